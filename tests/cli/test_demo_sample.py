"""The demo sample's transcript: it validates against the sample and its turns sit on each side's speech."""

from __future__ import annotations

import subprocess
from pathlib import Path

from services.compositor.captions import layout_cues
from shared.ffmpeg.speech import parse_silences, silencedetect_options, speech_intervals
from shared.transcript import parse_transcript
from tests.support.media import probe

SAMPLES = Path(__file__).resolve().parents[2] / "callreel" / "samples"
SAMPLE, TRANSCRIPT = SAMPLES / "demo-call.mp3", SAMPLES / "demo-call.transcript.json"


def _speech(duration: float) -> list[list[list[float]]]:
    """Each side's speech in the sample, measured the way the audio stage does (silencedetect, per channel)."""
    options = ":".join(f"{k}={v}" for k, v in silencedetect_options(-35.0, 0.3).items())
    log = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(SAMPLE), "-af", f"silencedetect={options}", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr
    # 0.3 s: the MP3's container length runs 0.17 s past its last decoded
    # sample, which the complement of the silences would count as speech.
    return [speech_intervals(side, duration, min_speech=0.3) for side in parse_silences(log.splitlines())]


def test_the_sample_transcript_validates_and_matches_each_sides_speech():
    duration = float(probe(SAMPLE)["format"]["duration"])
    transcript = parse_transcript(TRANSCRIPT.read_bytes(), duration=duration, max_bytes=1_000_000)
    assert {t.speaker for t in transcript.turns} == {"caller", "callee"}
    caller, callee = _speech(duration)
    for turn in transcript.turns:
        own = caller if turn.speaker == "caller" else callee
        other = callee if turn.speaker == "caller" else caller
        # Every turn lies on its own side's speech (to a detector's margin) and on none of the other's.
        assert any(s - 0.1 <= turn.start and turn.end <= e + 0.1 for s, e in own), turn
        assert not any(s < turn.end - 0.1 and turn.start + 0.1 < e for s, e in other), turn
    # Every stretch of speech is captioned.
    for side, spans in (("caller", caller), ("callee", callee)):
        for s, e in spans:
            assert any(t.speaker == side and t.start < e and s < t.end for t in transcript.turns), (side, s, e)
    assert layout_cues(transcript.turns, duration)
