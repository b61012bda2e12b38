"""What the compositor renders, checked on the video itself: real FFmpeg, PostgreSQL and the loopback S3 server.

Side videos are solid colours (red caller, blue callee, …), so a pixel sampled
from a decoded frame tells which input a panel shows at that moment.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from shared import keys
from shared.models import Call
from shared.settings import get_settings
from tests.support.media import frame_at, near, pcm, probe

RED, BLUE, GREEN, YELLOW = (255, 0, 0), (0, 0, 255), (0, 128, 0), (255, 255, 0)
CALLER_FACE, CALLEE_FACE = (235, 200, 170), (200, 150, 120)  # the shipped avatars' centre
HIGHLIGHT = (34, 197, 94)  # 0x22c55e


def left(frame) -> tuple[int, int]:
    """The centre of the caller's panel (panels are 640×480, or the side videos' shape when they share one)."""
    return frame.width // 4, frame.height // 2


def right(frame) -> tuple[int, int]:
    return 3 * frame.width // 4, frame.height // 2


def compose(call, storage):
    from services.compositor.composer import compose_call

    return compose_call(Call.get_by_id(call.id), get_settings(), storage)


def fetch_video(storage, call_id: str, target: Path) -> Path:
    storage.download_file(keys.video_key(call_id), target)
    return target


def streams(info: dict, kind: str) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (``moov`` before ``mdat`` = faststart)."""
    boxes, data = [], path.read_bytes()
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        at += size
    return boxes


def test_two_generated_sides_side_by_side_with_the_calls_audio(calls, s3, tmp_path, tmp_dir):
    call = calls.call(caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video("blue", "blue", duration=4.0))

    outcome = compose(call, s3)

    assert outcome.status == "completed" and outcome.error is None
    assert outcome.video_url == s3.object_url(keys.video_key(call.id))
    assert outcome.side_urls == {
        "caller": s3.object_url(keys.segment_video_key(call.id, "caller", 0)),
        "callee": s3.object_url(keys.segment_video_key(call.id, "callee", 0)),
    }
    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    info = probe(video)
    v, a = streams(info, "video"), streams(info, "audio")
    assert (v["width"], v["height"]) == (960, 480)  # two 480×480 panels: the 512×512 sources' shape
    assert (v["codec_name"], v["pix_fmt"]) == ("h264", "yuv420p")
    assert int(v["nb_frames"]) == 100 and v["avg_frame_rate"] == "25/1"
    assert (a["codec_name"], a["channels"]) == ("aac", 2)
    recording = tmp_path / "recording.mp3"
    s3.download_file(keys.recording_key(call.id), recording)
    decoded = len(pcm(recording)) / 8000  # the container's own figure for an MP3 is an estimate
    assert abs(float(a["duration"]) - decoded) <= 0.1
    assert abs(len(pcm(video)) / 8000 - decoded) <= 0.1
    boxes = top_level_boxes(video)
    assert boxes.index("moov") < boxes.index("mdat")  # +faststart: plays while downloading
    for t in (0.2, 2.0, 3.9):
        frame = frame_at(video, t)
        assert near(frame.pixel(*left(frame)), RED), (t, frame.pixel(*left(frame)))
        assert near(frame.pixel(*right(frame)), BLUE), (t, frame.pixel(*right(frame)))
    assert list(tmp_dir.iterdir()) == []


def test_inputs_of_other_sizes_rates_and_lengths_are_fitted_held_and_trimmed(calls, s3, tmp_path):
    call = calls.call(caller_state="generated", callee_state="generated")
    # Caller: small, 30 fps, 2 s for a 4 s segment (its last frame is held).
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red-small", "red", size="320x240", fps=30, duration=2.0))
    # Callee: portrait, 15 fps, 6 s (trimmed to the call).
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video("blue-portrait", "blue", size="360x640", fps=15, duration=6.0))

    assert compose(call, s3).status == "completed"

    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    v = streams(probe(video), "video")
    assert (v["width"], v["height"], int(v["nb_frames"])) == (1280, 480, 100)
    late = frame_at(video, 3.5)
    assert near(late.pixel(*left(late)), RED)  # held after the clip ended
    assert near(late.pixel(20, 400), RED)  # 4:3 fills the panel: no bars
    assert near(late.pixel(*right(late)), BLUE)
    # 9:16 in a 4:3 panel: 270 px wide, centred, black bars either side; never stretched.
    assert near(late.pixel(640 + 100, 240), (0, 0, 0), 24)
    assert near(late.pixel(640 + 540, 240), (0, 0, 0), 24)
    assert near(late.pixel(640 + 200, 240), BLUE)


@pytest.mark.parametrize(
    ("size", "frame_size"),
    [
        ("512x512", (960, 480)),  # square panels
        ("1280x720", (1280, 360)),  # halved: decoded without B-frame deblocking (panel.decode_options)
    ],
)
def test_side_videos_of_one_shape_get_panels_of_that_shape_with_no_bars(calls, s3, tmp_path, size, frame_size):
    call = calls.call(caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video(f"red-{size}", "red", size=size, duration=4.0))
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video(f"blue-{size}", "blue", size=size, duration=4.0))

    assert compose(call, s3).status == "completed"

    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    v = streams(probe(video), "video")
    assert (v["width"], v["height"], int(v["nb_frames"])) == (*frame_size, 100)
    frame = frame_at(video, 2.0)
    # Every column of each panel is picture: left edge, seam, right edge.
    width, half = frame_size[0], frame_size[0] // 2
    for x, colour in ((12, RED), (half - 12, RED), (half + 12, BLUE), (width - 12, BLUE)):
        assert near(frame.pixel(x, frame_size[1] - 60), colour), (x, frame.pixel(x, frame_size[1] - 60))


def test_segments_play_at_their_start_times_with_the_idle_avatar_between(calls, s3, tmp_path):
    call = calls.call(callee_state="generated", callee_speech=((0.6, 1.4), (2.6, 3.4)))
    calls.segment(call, "callee", 0, 0.5, 1.5, calls.video("green", "green", duration=1.0))
    calls.segment(call, "callee", 1, 2.5, 3.5, calls.video("yellow", "yellow", duration=1.0))

    outcome = compose(call, s3)

    assert outcome.status == "completed"
    assert outcome.side_urls == {"caller": None, "callee": None}  # two segments: no single side video
    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    expected = {0.2: CALLEE_FACE, 1.0: GREEN, 2.0: CALLEE_FACE, 3.0: YELLOW, 3.8: CALLEE_FACE}
    for t, colour in expected.items():
        frame = frame_at(video, t)
        assert near(frame.pixel(*right(frame)), colour), (t, frame.pixel(*right(frame)))
    frame = frame_at(video, 1.0)
    assert near(frame.pixel(*left(frame)), CALLER_FACE)  # the caller's local panel


def test_local_panels_move_with_their_own_audio_and_light_up_the_speaker(calls, s3, tmp_path):
    from services.compositor.panel import WAVE_COLOUR

    call = calls.call(caller_speech=((0.5, 2.0),), callee_speech=((2.5, 3.5),))

    assert compose(call, s3).status == "completed"  # local by configuration is not a failure

    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    caller_talks, callee_talks = frame_at(video, 1.2), frame_at(video, 3.0)
    wave = tuple(bytes.fromhex(WAVE_COLOUR["caller"][2:]))
    band = dict(x=8, y=376, w=620, h=80)  # the waveform band along the panel's bottom

    def waving(frame, x_offset=0):
        return sum(near(p, wave, 50) for p in frame.region(band["x"] + x_offset, band["y"], band["w"], band["h"]))

    assert waving(caller_talks) > 500  # the caller's waveform is up while the caller speaks…
    assert waving(callee_talks) < 50  # …and flat while the caller is silent
    assert near(caller_talks.pixel(2, 240), HIGHLIGHT) and not near(callee_talks.pixel(2, 240), HIGHLIGHT)
    assert near(callee_talks.pixel(1278, 240), HIGHLIGHT) and not near(caller_talks.pixel(1278, 240), HIGHLIGHT)
    assert near(caller_talks.pixel(*left(caller_talks)), CALLER_FACE) and near(caller_talks.pixel(*right(caller_talks)), CALLEE_FACE)


def test_labels_are_drawn_with_the_configured_font(calls, s3, tmp_path, settings_env):
    settings_env(CALLER_LABEL="Sales: 50%, [EU]", CALLEE_LABEL="")
    call = calls.call(caller_speech=(), callee_speech=())

    assert compose(call, s3).status == "completed"

    frame = frame_at(fetch_video(s3, call.id, tmp_path / "out.mp4"), 1.0)
    label_box = frame.region(12, 12, 200, 28)  # the caller's label, top left
    white = sum(near(p, (255, 255, 255), 40) for p in label_box)
    assert white > 100, "caller label text"
    assert sum(near(p, (255, 255, 255), 40) for p in frame.region(652, 12, 200, 28)) == 0  # empty label: none


def test_without_any_font_the_video_renders_without_labels(calls, s3, tmp_path, settings_env, monkeypatch):
    from services.compositor import media

    settings_env(LABEL_FONT=str(tmp_path / "no-such-font.ttf"))
    which = media.shutil.which
    monkeypatch.setattr(media.shutil, "which", lambda name: None if name == "fc-match" else which(name))  # no fontconfig either
    assert media.resolve_font(get_settings()) is None
    call = calls.call(caller_speech=(), callee_speech=())

    assert compose(call, s3).status == "completed"

    frame = frame_at(fetch_video(s3, call.id, tmp_path / "out.mp4"), 1.0)
    assert sum(near(p, (255, 255, 255), 40) for p in frame.region(12, 12, 200, 28)) == 0


def test_a_corrupt_side_video_falls_back_to_the_local_panel_and_the_call_is_partial(calls, s3, tmp_path, tmp_dir):
    call = calls.call(caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video("blue", "blue", duration=4.0))

    outcome = compose(call, s3)

    assert outcome.status == "partial"
    assert "caller video unusable" in outcome.error and "segment 0 video is corrupt" in outcome.error
    assert outcome.side_urls["caller"] is None and outcome.side_urls["callee"]
    frame = frame_at(fetch_video(s3, call.id, tmp_path / "out.mp4"), 1.0)
    assert near(frame.pixel(*left(frame)), CALLER_FACE)  # local panel, not the broken video
    assert near(frame.pixel(*right(frame)), BLUE)
    assert list(tmp_dir.iterdir()) == []


def test_a_failed_side_gets_a_local_panel_with_the_generation_error(calls, s3, tmp_path):
    call = calls.call(caller_state="failed", caller_error="fal job timed out twice", callee_state="generated")
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video("blue", "blue", duration=4.0))

    outcome = compose(call, s3)

    assert outcome.status == "partial"
    assert outcome.error == "caller video generation failed: fal job timed out twice"
    frame = frame_at(fetch_video(s3, call.id, tmp_path / "out.mp4"), 1.0)
    assert near(frame.pixel(*left(frame)), CALLER_FACE) and near(frame.pixel(*right(frame)), BLUE)


def test_missing_side_audio_uses_that_sides_channel_of_the_recording(calls, s3, tmp_path):
    from services.compositor.panel import WAVE_COLOUR

    call = calls.call(side_audio=False, caller_speech=((0.5, 2.0),), callee_speech=((2.5, 3.5),))

    assert compose(call, s3).status == "completed"

    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    wave = tuple(bytes.fromhex(WAVE_COLOUR["callee"][2:]))
    band = lambda frame: sum(near(p, wave, 50) for p in frame.region(648, 376, 620, 80))  # noqa: E731
    assert band(frame_at(video, 3.0)) > 500 and band(frame_at(video, 1.2)) < 50


def test_a_stitch_failure_keeps_the_side_videos_and_the_call_is_partial(calls, s3, settings_env, tmp_dir):
    # A preset libx264 does not know: FFmpeg itself refuses to encode.
    settings_env(VIDEO_PRESET="no-such-preset")
    call = calls.call(caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))
    calls.segment(call, "callee", 0, 0.0, 2.0, calls.video("blue-a", "blue", duration=2.0))
    calls.segment(call, "callee", 1, 2.0, 4.0, calls.video("blue-b", "blue", duration=2.0))

    outcome = compose(call, s3)

    assert outcome.status == "partial" and outcome.video_url is None
    assert outcome.error.startswith("stitching failed: compose failed")
    assert "no-such-preset" in outcome.error  # FFmpeg's own words, summarised
    assert outcome.side_urls["caller"] == s3.object_url(keys.segment_video_key(call.id, "caller", 0))
    # Two callee segments are joined (no re-encoding) into one side video.
    assert outcome.side_urls["callee"] == s3.object_url(keys.side_video_key(call.id, "callee"))
    assert not s3.exists(keys.video_key(call.id))
    joined = tmp_dir.parent / "callee.mp4"
    s3.download_file(keys.side_video_key(call.id, "callee"), joined)
    assert abs(float(probe(joined)["format"]["duration"]) - 4.0) < 0.2
    assert list(tmp_dir.iterdir()) == []


def test_a_stitch_failure_with_no_side_video_fails_the_call(calls, s3, settings_env):
    settings_env(VIDEO_PRESET="no-such-preset")
    outcome = compose(calls.call(), s3)
    assert outcome.status == "failed" and "stitching failed" in outcome.error


def test_speech_missing_from_the_row_is_measured_from_the_channel_energy(calls, s3, tmp_path):
    call = calls.call(caller_speech=((0.5, 2.0),), callee_speech=((2.5, 3.5),), store_speech=False)

    assert compose(call, s3).status == "completed"

    video = fetch_video(s3, call.id, tmp_path / "out.mp4")
    assert near(frame_at(video, 1.2).pixel(2, 240), HIGHLIGHT)
    assert not near(frame_at(video, 3.0).pixel(2, 240), HIGHLIGHT)
    assert near(frame_at(video, 3.0).pixel(1278, 240), HIGHLIGHT)


def test_a_missing_recording_is_a_permanent_error(calls, s3, tmp_dir):
    from shared.errors import PermanentError

    call = calls.call()
    s3.delete(keys.recording_key(call.id))
    with pytest.raises(PermanentError, match="recording .* is missing"):
        compose(call, s3)
    assert list(tmp_dir.iterdir()) == []


def test_a_render_that_meets_a_full_disk_is_retried_not_ended_partial(calls, s3, monkeypatch, tmp_dir):
    """D5: FFmpeg's ENOSPC is the disk's failure (NoSpace, retried), not the call's (partial with no video)."""
    from services.compositor import composer
    from shared.errors import NoSpace
    from shared.ffmpeg import FFmpegFailed

    def full(*args, **kwargs):
        raise FFmpegFailed("compose", 1, "[out#0/mp4] Error writing trailer: No space left on device")

    monkeypatch.setattr(composer, "run_ffmpeg", full)
    call = calls.call(caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))
    calls.segment(call, "callee", 0, 0.0, 4.0, calls.video("blue", "blue", duration=4.0))
    with pytest.raises(NoSpace, match=f"^no space left in TMP_DIR \\({tmp_dir}"):
        compose(call, s3)
    assert list(tmp_dir.iterdir()) == []


def test_a_cut_short_file_on_a_disk_with_no_room_reads_as_no_space_not_moov_atom(calls, s3, monkeypatch):
    from services.compositor import composer
    from shared import disk
    from shared.errors import NoSpace
    from shared.ffmpeg import FFmpegFailed

    room = iter([10**12])  # the check before the compose passes; after the failure the disk is full

    def truncated(*args, **kwargs):
        raise FFmpegFailed("compose", 1, "final.mp4: moov atom not found")

    monkeypatch.setattr(composer, "run_ffmpeg", truncated)
    monkeypatch.setattr(disk, "free_bytes", lambda folder: next(room, 1000))
    with pytest.raises(NoSpace, match="no space left in TMP_DIR .*0.0 MB free"):
        compose(calls.call(), s3)


def test_a_compose_is_refused_before_it_starts_when_tmp_dir_lacks_the_room(calls, s3, monkeypatch, tmp_dir):
    from services.compositor import composer
    from shared import disk
    from shared.errors import NoSpace

    call = calls.call()
    needed = composer.space_needed(Call.get_by_id(call.id), s3)
    recording = s3.size(keys.recording_key(call.id))
    assert needed >= composer.SPACE_FACTOR * recording + composer.SPACE_OVERHEAD
    monkeypatch.setattr(disk, "free_bytes", lambda folder: needed // 2)
    with pytest.raises(NoSpace, match=r"^no space left in TMP_DIR \(.*MB free, about .* MB needed\)"):
        compose(call, s3)
    assert list(tmp_dir.iterdir()) == []
