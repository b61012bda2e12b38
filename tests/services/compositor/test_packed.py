"""A packed segment (#26): one video of several stretches laid end to end, shown piece by piece at their times in the call.

The callee's one segment video is four colours one after another (red,
green, blue, yellow: its pieces' content, the second piece holding two), with
a single keyframe, so every piece after the first is read by decoding up to
its offset. Each colour must appear at its piece's time in the call, the idle
avatar between, in a one-pass render and in a chunked one whose chunk join
falls inside a piece.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.compositor.graph import build_command
from tests.support.media import ffmpeg, frame_at, near

from .test_chunks import frame_count
from .test_composer import BLUE, CALLEE_FACE, GREEN, RED, YELLOW, compose, fetch_video, right

FPS = 25
# The video: red 0–1.0 s, green 1.0–2.5 s, blue 2.5–4.1 s, yellow 4.1–5.3 s.
COLOURS = (("red", 1.0), ("green", 1.5), ("blue", 1.6), ("yellow", 1.2))
# (start in the call, end in the call, offset in the video)
PIECES = [[0.5, 1.5, 0.0], [2.5, 5.6, 1.0], [8.8, 10.0, 4.1]]
# The call's time → what the callee's panel shows there.
EXPECTED = {
    0.3: CALLEE_FACE, 1.0: RED, 1.44: RED, 2.0: CALLEE_FACE, 2.56: GREEN, 3.0: GREEN, 3.92: GREEN,  # video 2.42: green
    4.08: BLUE, 4.6: BLUE, 5.52: BLUE, 5.7: CALLEE_FACE, 7.0: CALLEE_FACE, 8.0: CALLEE_FACE, 8.9: YELLOW, 9.9: YELLOW, 11.0: CALLEE_FACE,
}


def packed_video(path: Path) -> Path:
    sources = [f"color=c={c}:s=512x512:r={FPS}:d={d}[v{n}]" for n, (c, d) in enumerate(COLOURS)]
    graph = ";".join(sources) + ";" + "".join(f"[v{n}]" for n in range(len(COLOURS))) + f"concat=n={len(COLOURS)}:v=1:a=0[v]"
    # One keyframe: a piece is found by decoding from the start, not by landing on a keyframe.
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "1000", "-pix_fmt", "yuv420p"]
    ffmpeg("-filter_complex", graph, "-map", "[v]", *encode, str(path))
    return path


@pytest.fixture
def packed_call(calls):
    call = calls.call(
        duration=12.0,
        caller_speech=((6.0, 8.0),),
        callee_speech=((0.65, 1.35), (2.65, 5.45), (8.95, 9.85)),
        callee_state="generated",
    )
    calls.segment(call, "callee", 0, 0.5, 10.0, packed_video(calls.workdir / "packed.mp4"), pieces=PIECES)
    return call


def check(video: Path) -> None:
    for t, colour in EXPECTED.items():
        frame = frame_at(video, t)
        assert near(frame.pixel(*right(frame)), colour), (t, frame.pixel(*right(frame)), colour)


def test_a_packed_segment_is_shown_piece_by_piece_at_the_pieces_times(packed_call, s3, tmp_path, settings_env, monkeypatch):
    settings_env(COMPOSE_CHUNK_SECONDS="0")
    commands = []
    def recorded(*args, **kwargs):
        commands.append(build_command(*args, **kwargs))
        return commands[-1]

    monkeypatch.setattr("services.compositor.composer.build_command", recorded)
    outcome = compose(packed_call, s3)
    assert outcome.status == "completed", outcome.reasons
    # One input for the file, read once from its start; each piece trimmed out of it.
    (command,) = commands
    assert "-ss" not in command
    assert sum(1 for arg in command if "callee-000.mp4" in arg) == 1
    video = fetch_video(s3, packed_call.id, tmp_path / "out.mp4")
    assert frame_count(video) == 12 * FPS
    check(video)


def test_a_chunked_render_cuts_a_packed_piece_at_its_join(packed_call, s3, settings_env, stub_broker, tmp_path, monkeypatch):
    """12 s in chunks of 4 s: the join at 4 s falls inside the second piece (2.5–5.6 s), no segment boundary near it."""
    from services.compositor import chunks, composer

    def no_single_pass(*args, **kwargs):
        raise AssertionError("the chunked render fell back to one pass")

    monkeypatch.setattr(composer, "_render", no_single_pass)
    boundaries = [t for start, end, _ in PIECES for t in (start, end)]
    windows = chunks.plan_windows(12.0, FPS, 4.0, boundaries)
    assert windows[0] == (0, 100)  # frame 100 = 4.0 s: inside the piece
    settings_env(COMPOSE_CHUNK_SECONDS="4")
    outcome = compose(packed_call, s3)
    assert outcome.status == "completed", outcome.reasons
    video = fetch_video(s3, packed_call.id, tmp_path / "chunked.mp4")
    assert frame_count(video) == 12 * FPS
    check(video)


def test_a_piece_past_the_end_of_a_short_video_is_left_to_the_idle_avatar():
    from services.compositor.composer import packed_clips
    from shared.ffmpeg import VideoInfo

    info = VideoInfo(512, 512, 25.0, 5.0)  # the model made 5 s for 6.2 s of audio
    clips = packed_clips(Path("v.mp4"), info, [[0.5, 1.5, 0.0], [2.5, 5.6, 1.0], [8.8, 10.0, 4.1], [12.0, 13.2, 5.3]])
    # The third piece runs past the end (its last frame held); the fourth has no frame at all.
    assert [(c.start, c.end, c.offset) for c in clips] == [(0.5, 1.5, 0.0), (2.5, 5.6, 1.0), (8.8, 10.0, 4.1)]
    assert len(packed_clips(Path("v.mp4"), VideoInfo(512, 512, 0.0, 0.0), [[0.5, 1.5, 0.0], [2.5, 5.6, 9.0]])) == 2  # length unknown: all
