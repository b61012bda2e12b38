"""``callreel render --transcript``: a bad file is refused before anything is stored; a good one captions the video and writes OUT.vtt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import webvtt

from tests.support import media

CLI = Path(sys.executable).with_name("callreel")


@pytest.fixture
def cli(tmp_path):
    env = {"PATH": os.environ["PATH"], "CALLREEL_DATA_DIR": str(tmp_path / "data"), "TMP_DIR": str(tmp_path / "tmp"), "HOME": str(tmp_path)}

    def run(*args):
        return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)

    return run


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    return media.tone_call(tmp_path_factory.mktemp("rec") / "call.mp3", 4.0, caller=[(0.3, 1.6)], callee=[(2.0, 3.6)])


def test_a_bad_transcript_is_refused_with_every_problem_and_nothing_stored(cli, call, tmp_path):
    bad = tmp_path / "words.json"
    bad.write_text(
        json.dumps(
            [
                {"speaker": "caller", "start": 0.3, "end": 1.6, "text": "Fine."},
                {"speaker": "narrator", "start": 1.0, "end": 2.0, "text": "Who?"},
                {"speaker": "callee", "start": 2.0, "end": 30.0, "text": "Too long."},
                {"speaker": "callee", "start": 3.0, "end": 2.5, "text": ""},
            ]
        )
    )
    out = tmp_path / "out.mp4"
    result = cli("render", call, "-o", out, "--transcript", bad)
    assert result.returncode == 1, result.stderr
    for problem in ("turn 2: unknown speaker 'narrator'", "turn 3: end 30 s is after the end of the call", "turn 4: end 2.5 s is not after start 3", "turn 4: no text"):
        assert problem in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not out.with_suffix(".vtt").exists()
    assert cli("list").stdout.strip() == "no calls"  # no call was stored, nor its recording
    assert not (tmp_path / "data" / "objects").exists() or not any(p.is_file() for p in (tmp_path / "data" / "objects").rglob("*"))


def test_a_good_transcript_captions_the_video_and_writes_the_vtt_beside_it(cli, call, tmp_path):
    words = tmp_path / "words.vtt"
    words.write_text(
        "WEBVTT\n\n00:00.300 --> 00:01.600\n<v Caller>It's 50% off: {\\an8} \\N %{pts} مرحبا 🙂</v>\n\n"
        "00:02.000 --> 00:03.600\n<v Customer>Great, thank you.</v>\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.mp4"
    result = cli("render", call, "-o", out, "--transcript", words, "-q")
    assert result.returncode == 0, result.stderr
    vtt = out.with_suffix(".vtt")
    assert f"{vtt}: captions" in result.stdout
    subtitles = [s for s in media.probe(out)["streams"] if s["codec_type"] == "subtitle"]
    assert [(s["codec_name"], s["tags"]["language"]) for s in subtitles] == [("mov_text", "eng")]
    captions = webvtt.read(str(vtt)).captions
    assert [c.voice for c in captions] == ["AI agent", "Customer"]  # the deployment's labels name the voices
    assert all(0 <= c.start_in_seconds < c.end_in_seconds <= 4.0 for c in captions)
    assert "{\\an8} \\N %{pts} مرحبا 🙂" in captions[0].text

    # --captions off: the same call without any captions, and no OUT.vtt left from before.
    result = cli("render", call, "-o", out, "--transcript", words, "--captions", "off", "-q")
    assert result.returncode == 0, result.stderr
    assert not vtt.exists() and "no captions: captions are off" in result.stdout
    assert [s for s in media.probe(out)["streams"] if s["codec_type"] == "subtitle"] == []


def test_speakers_may_be_named_by_the_calls_own_names(cli, call, tmp_path):
    words = tmp_path / "words.json"
    turns = [{"speaker": "Ana Lima", "start": 0.3, "end": 1.6, "text": "Hello."}, {"speaker": "王小明", "start": 2.0, "end": 3.6, "text": "Hi."}]
    words.write_text(json.dumps(turns))
    out = tmp_path / "out.mp4"
    result = cli("render", call, "-o", out, "-q", "--transcript", words, "--caller-name", "Ana Lima", "--callee-name", "王小明")
    assert result.returncode == 0, result.stderr
    assert [c.text for c in webvtt.read(out.with_suffix(".vtt"))] == ["Hello.", "Hi."]
    refused = cli("render", call, "-o", out, "-q", "--transcript", words)  # without the names: unknown speakers
    assert refused.returncode == 1 and "unknown speaker 'Ana Lima'" in refused.stderr
