"""Captions in the compositor's own render: every layout's pixels, the subtitle track, the WebVTT file, and failures.

Real FFmpeg throughout. The per-layout renders use solid-colour side videos
and no speaker highlight, so the only thing that changes between a frame in
silence and one while a side speaks is its caption: every changed pixel must
lie in that side's caption region.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path

import pytest
import webvtt

from services.compositor import Clip, SideSpec
from services.compositor.composer import compose_call, render_spec
from services.compositor.graph import build_command
from services.compositor.layouts import LAYOUTS
from shared import keys
from shared.ffmpeg import probe_video
from shared.models import Call
from shared.settings import get_settings
from shared.transcript import Transcript, Turn, to_json
from tests.support.media import ffmpeg, frame_at, probe, tone_call

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
DURATION = 3.0
TURNS = (
    Turn("caller", 0.6, 1.4, "Hello, this is Ava from Northwind Pharmacy."),
    Turn("callee", 1.8, 2.6, "Oh hello, is my refill ready?"),
)


def solid(path: Path, colour: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"color=c={colour}:s=512x512:r=25:d={DURATION}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captions-media")
    return {
        "recording": tone_call(folder / "call.mp3", DURATION, [(0.6, 1.4)], [(1.8, 2.6)]),
        "caller": solid(folder / "caller.mp4", "0x204060"),
        "callee": solid(folder / "callee.mp4", "0x603020"),
    }


def _changed(a, b, rect: tuple[int, int, int, int] | None = None, step: int = 3) -> list[tuple[int, int]]:
    """Pixels (every ``step``-th) that differ between two frames of the same size by more than compression noise."""
    x0, y0, x1, y1 = rect or (0, 0, a.width, a.height)
    return [
        (x, y)
        for y in range(y0, y1, step)
        for x in range(x0, x1, step)
        if max(abs(p - q) for p, q in zip(a.pixel(x, y), b.pixel(x, y))) > 60
    ]


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_burns_a_sides_words_in_its_caption_region_only_while_it_speaks(media, tmp_path, name):
    settings = dataclasses.replace(get_settings(), video_layout=name, video_fps=10, video_preset="ultrafast", audio_mix="recording")
    sides = [
        SideSpec(side, "", None, clips=(Clip(media[side], 0.0, DURATION, probe_video(media[side], settings)),))
        for side in ("caller", "callee")
    ]
    spec = render_spec(settings, media["recording"], DURATION, *sides, tmp_path, font=FONT, turns=TURNS, captions="burn")
    output = tmp_path / "out.mp4"
    subprocess.run(build_command(spec, output), check=True, capture_output=True, timeout=300)

    # Cues run at least a second: the caller's from 0.6 to 1.6, the callee's from 1.8 to 2.8.
    silence, caller, callee = (frame_at(output, t) for t in (0.2, 1.1, 2.3))
    for frame, speaker in ((caller, "caller"), (callee, "callee")):
        changed = _changed(silence, frame)
        assert len(changed) > 100, (name, speaker, len(changed))  # the words are there
        region = spec.placement.caption(speaker)
        outside = [(x, y) for x, y in changed if not (region.x <= x < region.x + region.w and region.y <= y < region.y + region.h)]
        assert outside == [], (name, speaker, outside[:5], region)
        # Centred in the region, across.
        xs = [x for x, _ in changed]
        assert abs((min(xs) + max(xs)) / 2 - (region.x + region.w / 2)) < region.w * 0.1, (name, speaker)
    # Silence again after the cues: the frame is as before any words.
    assert _changed(silence, frame_at(output, 2.9)) == []


# -- compose_call: the stored transcript, the track, the file, the failures -------------------


def _store(s3, call_id: str, turns) -> None:
    """The transcript as the API and speech-to-text store it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "transcript.json"
        path.write_text(to_json(Transcript(tuple(turns))), encoding="utf-8")
        s3.upload_file(path, keys.transcript_key(call_id), content_type="application/json")


def _subtitles(video: Path) -> list[dict]:
    return [s for s in probe(video)["streams"] if s["codec_type"] == "subtitle"]


def _fetch(s3, key: str, target: Path) -> Path:
    s3.download_file(key, target)
    return target


HOSTILE = (
    "It's 50% off: a \\ backslash, a \\N, %{pts} and {\\an8}{\\pos(10,10)}moved? "
    "line one\nline two مرحبا ‏and back‎ 🙂👍🏽 👩‍💻 " + "x" * 10_000
)


def test_a_stored_transcript_is_burned_tracked_and_published(calls, s3, tmp_path):
    call = calls.call(captions="burn", callee_name="Mrs Tran", caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video("blue", "blue", duration=4.0))
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, HOSTILE), Turn("callee", 2.5, 3.5, "Yes: 'please' \\ {\\b1}")])

    outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)

    assert outcome.status == "completed", outcome.error
    assert outcome.captions == {"captions_url": s3.object_url(keys.captions_key(call.id)), "transcript_error": None}
    video = _fetch(s3, keys.video_key(call.id), tmp_path / "out.mp4")
    assert [(s["codec_name"], s["tags"]["language"]) for s in _subtitles(video)] == [("mov_text", "eng")]
    captions = webvtt.read(str(_fetch(s3, keys.captions_key(call.id), tmp_path / "call.vtt"))).captions
    assert captions and all(0 <= c.start_in_seconds < c.end_in_seconds <= 4.0 for c in captions)
    assert {c.voice for c in captions} == {"AI agent", "Mrs Tran"}
    # The caller's burned words sit in the lower part of the left panel while the caller speaks, not on the right.
    frame, quiet = frame_at(video, 1.0), frame_at(video, 3.9)
    half, rows = frame.width // 2, (frame.height * 7 // 10, frame.height * 23 // 25)
    assert len(_changed(quiet, frame, (0, rows[0], half, rows[1]))) > 50
    assert _changed(quiet, frame, (half, rows[0], frame.width, rows[1])) == []


def test_track_mode_muxes_the_track_without_burning(calls, s3, tmp_path):
    call = calls.call(captions="track")
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, "Hello there.")])
    outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)
    assert outcome.status == "completed" and outcome.captions["captions_url"]
    video = _fetch(s3, keys.video_key(call.id), tmp_path / "out.mp4")
    assert [s["codec_name"] for s in _subtitles(video)] == ["mov_text"]
    assert not (tmp_path / "tmp").exists() or not list((tmp_path / "tmp").rglob("captions.ass"))


def test_off_and_no_transcript_leave_the_video_and_the_columns_alone(calls, s3, tmp_path):
    off = calls.call(captions="off")
    _store(s3, off.id, [Turn("caller", 0.5, 2.0, "Hello there.")])
    none = calls.call()
    for call in (off, none):
        outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)
        assert outcome.status == "completed" and outcome.captions == {}
        assert _subtitles(_fetch(s3, keys.video_key(call.id), tmp_path / f"{call.id}.mp4")) == []
        assert not s3.exists(keys.captions_key(call.id))


def test_a_transcript_refused_against_the_call_leaves_a_completed_video_without_captions(calls, s3, tmp_path, run_compose):
    call = calls.call()
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, "Fine."), Turn("callee", 2.0, 9.0, "Past the end of a four-second call.")])

    run_compose(call.id)

    row = Call.get_by_id(call.id)
    assert row.video_status == "completed" and row.video_error_message is None
    assert row.captions_url is None and "after the end of the call" in row.transcript_error
    assert _subtitles(_fetch(s3, keys.video_key(call.id), tmp_path / "out.mp4")) == []
    assert not s3.exists(keys.captions_key(call.id))


def test_a_render_that_fails_with_captions_is_rendered_again_without_them(calls, s3, tmp_path, monkeypatch):
    from services.compositor import graph

    # A libass that cannot open its file: FFmpeg fails on the captions alone.
    monkeypatch.setattr(graph, "burn", lambda stream, ass_file, font=None: stream.filter("ass", filename="/nonexistent/captions.ass"))
    call = calls.call()
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, "Hello there.")])

    outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)

    assert outcome.status == "completed" and outcome.error is None
    assert outcome.captions["captions_url"] is None
    assert outcome.captions["transcript_error"].startswith("the render with captions failed, rendered without them")
    assert _subtitles(_fetch(s3, keys.video_key(call.id), tmp_path / "out.mp4")) == []
    assert not s3.exists(keys.captions_key(call.id))


def test_a_redelivered_compose_overwrites_rather_than_duplicates(calls, s3, tmp_path, run_compose):
    call = calls.call()
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, "Hello there."), Turn("callee", 2.5, 3.5, "Hi.")])
    run_compose(call.id)
    first = _fetch(s3, keys.captions_key(call.id), tmp_path / "first.vtt").read_text()
    run_compose(call.id, rerender=True)
    row = Call.get_by_id(call.id)
    assert row.video_status == "completed" and row.transcript_error is None
    assert row.captions_url == s3.object_url(keys.captions_key(call.id))
    assert _fetch(s3, keys.captions_key(call.id), tmp_path / "second.vtt").read_text() == first
    assert len(_subtitles(_fetch(s3, keys.video_key(call.id), tmp_path / "out.mp4"))) == 1


def test_the_store_away_while_the_transcript_is_read_retries_the_compose_rather_than_drop_the_captions(calls, s3, monkeypatch):
    from shared.errors import StorageUnavailable

    call = calls.call(captions="burn")
    _store(s3, call.id, [Turn("caller", 0.5, 2.0, "Hello")])
    download = s3.download_file

    def away_for_the_transcript(key, path):
        if key == keys.transcript_key(call.id):
            raise StorageUnavailable(f"the object store failed the download of {key} (EndpointConnectionError)")
        return download(key, path)

    monkeypatch.setattr(s3, "download_file", away_for_the_transcript)
    with pytest.raises(StorageUnavailable, match="download of transcripts/"):
        compose_call(Call.get_by_id(call.id), get_settings(), s3)
    assert not s3.exists(keys.video_key(call.id))  # not made for good without its captions
