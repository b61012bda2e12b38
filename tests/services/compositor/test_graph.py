"""The FFmpeg command itself: what the graph does per frame, and a graph too long for one argument."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.compositor.graph import INLINE_GRAPH_LIMIT, build_chunk_command, build_command
from services.compositor.layout import Clip, RenderSpec, SideSpec
from shared.assets import avatar_path
from shared.ffmpeg import VideoInfo, graph_file_option
from tests.support.media import color_video, fake_binary, probe, tone_call


# First bytes enough for shared.ffmpeg.inputs to know each file (nothing here decodes them).
MP4_HEAD, MP3_HEAD = b"\x00\x00\x00\x18ftypisom", b"ID3\x04\x00"


def _stub(path: Path, head: bytes) -> Path:
    if not path.exists():
        path.write_bytes(head)
    return path


def _spec(tmp_path: Path, **overrides) -> RenderSpec:
    info = VideoInfo(512, 512, 25.0, 1.5)
    for name in ("a.mp4", "b.mp4", "big.mp4", "one.mp4"):
        _stub(tmp_path / name, MP4_HEAD)
    _stub(tmp_path / "rec.mp3", MP3_HEAD)
    clips = (Clip(tmp_path / "a.mp4", 0.5, 2.0, info), Clip(tmp_path / "b.mp4", 2.5, 3.5, info))
    values = dict(
        recording=tmp_path / "rec.mp3",
        duration=4.0,
        caller=SideSpec("caller", "AI agent", avatar_path("caller"), clips=clips),
        callee=SideSpec("callee", "Customer", avatar_path("callee"), audio=tmp_path / "rec.mp3", audio_channel=1, speech=((1.0, 2.0),)),
        workdir=tmp_path,
        font=None,
    )
    return RenderSpec(**{**values, **overrides})


def _inputs(args: list[str]) -> dict[str, list[str]]:
    """Each input's path and the options before its ``-i`` (since the previous input)."""
    found, start = {}, 1  # after the binary
    for i, arg in enumerate(args):
        if arg == "-i":
            found[args[i + 1].removeprefix("file:")] = args[start:i]
            start = i + 2
    return found


def _graph(args: list[str]) -> str:
    return args[args.index("-filter_complex") + 1]


def test_every_input_is_scaled_once_and_nothing_is_converted_but_to_yuv420p(tmp_path):
    graph = _graph(build_command(_spec(tmp_path), tmp_path / "out.mp4"))
    # Two clips of the caller, one avatar still per side: four scales, no more.
    steps = [step.split("]", 1)[-1].rsplit("[", 1)[0] for step in graph.split(";")]
    filters = [step.split("=", 1)[0] for step in steps]
    assert filters.count("scale") == 4
    assert [step for step in steps if step.startswith("format=")] == ["format=yuv420p"] * 4
    assert filters.count("loop") == 4  # 3 idle pieces + the callee's local panel, each from one decoded still
    assert "hstack=inputs=2" in graph and "showwaves=" in graph and "drawtext" not in graph  # no font: no label


def test_only_a_clip_halved_or_more_is_decoded_without_b_frame_deblocking(tmp_path):
    big = Clip(tmp_path / "big.mp4", 0.0, 4.0, VideoInfo(1280, 720, 25.0, 4.0))
    spec = _spec(tmp_path, callee=SideSpec("callee", "Customer", avatar_path("callee"), clips=(big,)))
    args = build_command(spec, tmp_path / "out.mp4")
    decoded = {path: dict(zip(options[::2], options[1::2])) for path, options in _inputs(args).items()}
    assert decoded[str(big.path)] == {"-skip_loop_filter": "bidir", "-f": "mov", "-protocol_whitelist": "file"}
    # The 512×512 clips in 640×480 panels, the avatar still and the recording: decoded in full.
    others = [options for path, options in decoded.items() if path != str(big.path)]
    assert len(others) == 4 and all("-skip_loop_filter" not in options for options in others)
    # Every file is opened as its one format, through the file protocol only (shared.ffmpeg.inputs).
    assert sorted(options["-f"] for options in decoded.values()) == ["mov", "mov", "mov", "mp3", "png_pipe"], decoded
    assert all(options["-protocol_whitelist"] == "file" for options in decoded.values())


def _versioned(tmp_path: Path, version: str) -> str:
    return fake_binary(tmp_path / f"ffmpeg-{version}", f"ffmpeg version {version} Copyright (c) 2000-2026")


def _clip_decoder_threads(args: list[str]) -> dict[str, str | None]:
    return {
        path: (options[options.index("-threads") + 1] if "-threads" in options else None)
        for path, options in _inputs(args).items()
        if path.endswith(".mp4")
    }


def test_segmented_sides_decode_on_one_thread_each_under_a_threaded_ffmpeg_only(tmp_path):
    spec = _spec(tmp_path)  # the caller has two clips
    threaded = _clip_decoder_threads(build_command(spec, tmp_path / "out.mp4", binary=_versioned(tmp_path, "7.1.5-0+deb13u1")))
    assert set(threaded.values()) == {"1"} and len(threaded) == 2
    old = _clip_decoder_threads(build_command(spec, tmp_path / "out.mp4", binary=_versioned(tmp_path, "5.1.9-0+deb12u1")))
    assert set(old.values()) == {None}
    one = Clip(tmp_path / "one.mp4", 0.0, 4.0, VideoInfo(512, 512, 25.0, 4.0))
    single = _spec(tmp_path, caller=SideSpec("caller", "AI agent", avatar_path("caller"), clips=(one,)))
    unsegmented = _clip_decoder_threads(build_command(single, tmp_path / "out.mp4", binary=_versioned(tmp_path, "7.1.5-0+deb13u1")))
    assert set(unsegmented.values()) == {None}  # two decoders keep their frame threads: they are the render's parallelism


def _packed_spec(tmp_path: Path) -> RenderSpec:
    """The caller's side: one packed file of three pieces, 1 s each, laid end to end, idle 1 s between them."""
    info = VideoInfo(512, 512, 25.0, 3.0)
    path = _stub(tmp_path / "packed.mp4", MP4_HEAD)
    clips = tuple(Clip(path, 2.0 * n, 2.0 * n + 1.0, info, offset=float(n)) for n in range(3))
    return _spec(tmp_path, duration=6.0, caller=SideSpec("caller", "AI agent", avatar_path("caller"), clips=clips))


def test_a_packed_file_is_one_input_split_into_its_pieces(tmp_path):
    spec = _packed_spec(tmp_path)
    args = build_command(spec, tmp_path / "out.mp4")
    # One decoder for the file, read from its start, not one a piece each with its own seek.
    assert _opened(args, tmp_path / "packed.mp4") == 1 and "-ss" not in args
    graph = _graph(args)
    assert "split=3" in graph
    # Each piece cut from the file at its offset, a few frames past its 25 frames (fps sees the next one).
    assert [t for t in ("trim=end=1.120:start=0.000", "trim=end=2.120:start=1.000", "trim=end=3.120:start=2.000") if t in graph] == [
        "trim=end=1.120:start=0.000", "trim=end=2.120:start=1.000", "trim=end=3.120:start=2.000",
    ], graph
    # A chunk from 2.4 s on shows the second piece's end and the third: the file read once, from the second's offset.
    chunk = build_chunk_command(spec, (60, 150), tmp_path / "chunk.mp4")
    assert chunk[chunk.index("-ss") + 1] == "1.000" and _opened(chunk, tmp_path / "packed.mp4") == 1 and "split=2" in _graph(chunk)


def _opened(args: list[str], path: Path) -> int:
    return sum(1 for i, arg in enumerate(args[:-1]) if arg == "-i" and args[i + 1].removeprefix("file:") == str(path))


def test_the_same_file_twice_is_refused_before_ffmpeg_runs(tmp_path):
    import pytest

    same = _spec(tmp_path, callee=SideSpec("callee", "Customer", avatar_path("caller")))
    with pytest.raises(ValueError, match="used twice"):
        build_command(same, tmp_path / "out.mp4")


def test_encoder_and_container_options(tmp_path):
    args = build_command(_spec(tmp_path, preset="faster", crf=21, x264_params="ref=2"), tmp_path / "out.mp4")
    options = dict(zip(args[::1], args[1::1]))
    assert (options["-c:v"], options["-preset"], options["-crf"], options["-pix_fmt"]) == ("libx264", "faster", "21", "yuv420p")
    assert (options["-c:a"], options["-ac"], options["-movflags"], options["-x264-params"]) == ("aac", "2", "+faststart", "ref=2")
    assert options["-filter_complex_threads"] == "1"
    assert "-x264-params" not in build_command(_spec(tmp_path, x264_params=""), tmp_path / "out.mp4")


def _render_long_graph(tmp_path: Path, binary: str) -> list[str]:
    # A two-hour call with thousands of turns: the highlight expression alone passes the limit.
    speech = tuple((i * 2.0, i * 2.0 + 1.0) for i in range(3600))
    color_video(tmp_path / "a.mp4", "red", duration=1.5)
    color_video(tmp_path / "b.mp4", "red", duration=1.5)
    tone_call(tmp_path / "rec.mp3", 4.0)
    spec = _spec(tmp_path, duration=7200.0, callee=SideSpec("callee", "Customer", avatar_path("callee"), speech=speech))
    args = build_command(spec, tmp_path / "out.mp4", binary=binary)
    # FFmpeg reads it (and parses the 3600-term highlight expression): render the first second only.
    output = args.index(str(tmp_path / "out.mp4"))
    subprocess.run([*args[:output], "-t", "1", *args[output:]], check=True, capture_output=True, timeout=120)
    assert abs(float(probe(tmp_path / "out.mp4")["format"]["duration"]) - 1.0) < 0.2
    return args


def test_a_graph_too_long_for_one_argument_goes_through_a_file(tmp_path):
    args = _render_long_graph(tmp_path, "ffmpeg")
    assert "-filter_complex" not in args
    script = Path(args[args.index(graph_file_option("ffmpeg")) + 1])
    assert len(script.read_text()) > INLINE_GRAPH_LIMIT and script.parent == tmp_path


def test_a_current_ffmpeg_reads_the_long_graph_with_its_own_option(tmp_path):
    """FFmpeg 8 removed -filter_complex_script: a current static build (imageio-ffmpeg, dev extra) gets -/filter_complex."""
    import imageio_ffmpeg

    current = imageio_ffmpeg.get_ffmpeg_exe()
    assert graph_file_option(current) == "-/filter_complex"
    args = _render_long_graph(tmp_path, current)
    assert "-filter_complex_script" not in args
    assert _clip_decoder_threads(args) == {str(tmp_path / "a.mp4"): "1", str(tmp_path / "b.mp4"): "1"}  # and segments on one thread
