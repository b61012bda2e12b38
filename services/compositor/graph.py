"""The one FFmpeg command that renders a call: two panels, placed by the layout, over the call's audio.

::

    caller clips ─┐ (fitted, idle avatar in the gaps,        ┌─ label ─ highlight ─┐
    or local panel ┘  concatenated to the call's length) ────┘                     ├─ hstack ─ libx264 ─┐
    callee …  ─────────────────────────────────── same ───────────────────────────┘                    ├─ mp4 +faststart
    recording (stereo) ──────────────────────────────────────────────────────────────────── aac ───────┘

Each panel is built at its size in the layout (:mod:`.layouts`), in yuv420p,
at the output rate, and is exactly ``frames`` frames long, so the stack pairs
frames one to one and the encoder gets frames in its own format (no
conversion in front of it). Panels in a row are joined with ``hstack``, in a
column with ``vstack``, and the pair is padded onto the background only where
it does not fill the frame (``square``): cheaper than overlaying both panels
on a background canvas or ``xstack`` with a fill, which touch every pixel of
the frame again (measured: docs/layouts.md, section "Composition cost").
The labels and the active-speaker border are drawn per panel, timed by the
side's speech intervals through a timeline ``enable`` expression.
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from shared.ffmpeg import RECORDING, file_url, graph_file_option, input_options, threaded_cli

from . import labels, mix
from .captions import ass_window, burn, track_output_options
from .layout import Piece, RenderSpec, SideSpec, enable_expr, speaking, timeline
from .layouts import BACKGROUND, CROP, Layout, Rect
from .panel import clip_source, fitted_clip, hold, local_panel, still

__all__ = [
    "build_command", "build_chunk_command", "build_audio_command", "windowed", "Window", "side_stream",
    "HIGHLIGHT_COLOUR", "AUDIO_BITRATE", "AUDIO_RATE",
]

Window = tuple[int, int]  # frames [first, last) of the call
HIGHLIGHT_COLOUR = "0x22c55e"
AUDIO_BITRATE = "96k"
AUDIO_RATE = 48000
# The graph's filters run on one thread. Their slice threading (FFmpeg's
# default: one thread a core) splits each small per-frame job across threads
# that the decoders and x264 are already keeping busy, so one filter thread
# renders faster, for slightly less CPU (measured: docs/benchmarks.md, section
# "One filter thread").
FILTER_THREADS = 1
# Above this, the graph goes to a file: a very long call's highlight
# expression would pass the kernel's limit for one argument (128 KiB).
INLINE_GRAPH_LIMIT = 60_000
# A file that shows several pieces (a packed segment) is one input split into
# its pieces; False: an input a piece, as before (bench/many_clips.py compares).
SHARED_INPUTS = True


def windowed(pieces: list[Piece], window: Window | None) -> list[tuple[Piece, int]]:
    """The pieces (each with the frames it skips) that show frames ``[first, last)`` of the call: all of them without a window."""
    if window is None:
        return [(piece, 0) for piece in pieces]
    first, last = window
    kept, cursor = [], 0
    for piece in pieces:
        start, end = max(first, cursor), min(last, cursor + piece.frames)
        if end > start:
            kept.append((Piece(end - cursor, piece.clip), start - cursor))
        cursor += piece.frames
    return kept


def _track(side: SideSpec, spec: RenderSpec, one_thread: bool, window: Window | None = None):
    """The side's generated clips at their start times, the idle avatar in between (only the window's frames of them)."""
    pieces = windowed(timeline([(c.start, c.end) for c in side.clips], spec.duration, spec.fps), window)
    idle_count = sum(1 for p, _ in pieces if p.clip is None)
    panel, crop = spec.placement.panel(side.side), spec.placement.fit == CROP
    idle = still(side, panel.w, panel.h, spec.fps, crop=crop) if idle_count else None
    idle_frames = idle.split() if idle is not None and idle_count > 1 else None
    sources = _shared_sources(side, [p.clip for p, _ in pieces if p.clip is not None], panel, one_thread, crop)
    parts, used = [], 0
    for piece, skip in pieces:
        if piece.clip is None:
            frame = idle_frames[used] if idle_frames is not None else idle
            used += 1
            parts.append(hold(frame, piece.frames - skip, spec.fps))
        else:
            clip = side.clips[piece.clip]
            shared = sources.get(clip.path)
            source, start = (next(shared[0]), shared[1]) if shared else (None, 0.0)
            parts.append(
                fitted_clip(
                    clip, piece.frames, panel.w, panel.h, spec.fps,
                    one_thread=one_thread, crop=crop, skip=skip, source=source, source_start=start,
                )
            )
    track = parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, n=len(parts), v=1, a=0)
    # concat's timestamps follow each input's own; renumber so the panel runs at exactly fps,
    # on the call's clock (a chunk's first frame at its time in the call: highlights and captions are timed by it).
    first = window[0] if window else 0
    return track.filter("setpts", f"(N+{first})/({spec.fps}*TB)" if first else f"N/({spec.fps}*TB)")


def _shared_sources(side: SideSpec, used: list[int], panel: Rect, one_thread: bool, crop: bool) -> dict:
    """For each file that shows more than one piece: an iterator over a ``split`` of it, one output a piece, and where it is read from.

    A packed segment's pieces are one file, shown in the order they lie in it
    (``shared.segments`` lays them end to end), so one decoder reads it once and
    each piece is trimmed out of it. One input a piece cost a demuxer, a
    decoder and its threads a piece, and decoded again from the keyframe
    before every piece (measured: docs/compositor.md, section "Speed").
    The input is read from the earliest piece shown (a chunk's first).
    """
    if not SHARED_INPUTS:
        return {}
    by_path: dict[Path, list[int]] = {}
    for index in used:
        by_path.setdefault(side.clips[index].path, []).append(index)
    sources = {}
    for path, indices in by_path.items():
        offsets = [side.clips[i].offset for i in indices]
        if len(indices) < 2 or offsets != sorted(offsets):
            continue  # one piece, or pieces not in file order (a split would buffer): an input a piece
        first = side.clips[indices[0]]
        seek = round(first.offset, 3)
        split = clip_source(first, panel.w, panel.h, one_thread=one_thread, crop=crop, seek=seek).split()
        sources[path] = (iter([split[n] for n in range(len(indices))]), seek)
    return sources


def _label(stream, side: SideSpec, spec: RenderSpec):
    if spec.font is None or not side.label.strip():
        return stream
    # The text goes through a file: no escaping rules of drawtext or of the
    # filtergraph can be tripped by a label such as "Sales: 50%, [EU]".
    text_file = spec.workdir / f"label-{side.side}.txt"
    text_file.write_text(side.label.strip(), encoding="utf-8")
    # The font and size labels.fit_labels chose (one that has the name's characters, shrunk to fit the panel).
    size = side.label_size or labels.default_size(spec.placement.panel(side.side).h)
    return stream.filter(
        "drawtext",
        fontfile=str(side.label_font or spec.font),
        textfile=str(text_file),
        expansion="none",
        fontsize=size,
        fontcolor="white",
        x=labels.margin(size),
        y=labels.margin(size),
        box=1,
        boxcolor="black@0.55",
        boxborderw=labels.border(size),
    )


def _highlight(stream, side: SideSpec, spec: RenderSpec):
    expr = enable_expr(speaking(side.speech, spec.duration))
    if expr is None:
        return stream
    # The border as four filled strips, not one hollow panel-sized box: drawbox
    # tests every pixel of its box on every frame, so the hollow box cost as
    # much as scaling the panel (measured: docs/benchmarks.md, section "The
    # speaker highlight"). The picture is the same.
    t = max(4, spec.placement.panel(side.side).h // 80)
    for x, y, w, h in (("0", "0", "iw", t), ("0", f"ih-{t}", "iw", t), ("0", t, t, f"ih-{2 * t}"), (f"iw-{t}", t, t, f"ih-{2 * t}")):
        stream = stream.filter("drawbox", x=x, y=y, w=w, h=h, color=HIGHLIGHT_COLOUR, t="fill", enable=expr)
    return stream


def side_stream(side: SideSpec, spec: RenderSpec, *, one_thread_decoders: bool = False, window: Window | None = None):
    """One finished panel: its picture, label and speaking border (frames ``window`` of the call only, when given)."""
    if side.is_local:
        panel = spec.placement.panel(side.side)
        first, last = window or (0, spec.frames)
        skip = first if window is not None else None
        stream = local_panel(side, last - first, panel.w, panel.h, spec.fps, crop=spec.placement.fit == CROP, skip=skip)
        if first:
            stream = stream.filter("setpts", f"PTS+{first}/({spec.fps}*TB)")
    else:
        stream = _track(side, spec, one_thread_decoders, window)
    return _highlight(_label(stream, side, spec), side, spec)


def _video_options(spec: RenderSpec) -> dict[str, object]:
    """The encoder's settings: the same for a whole render and for every chunk, so chunks join without re-encoding."""
    options: dict[str, object] = {"c:v": "libx264", "preset": spec.preset, "crf": spec.crf, "pix_fmt": "yuv420p", "r": spec.fps}
    if spec.x264_params:
        options["x264-params"] = spec.x264_params
    return options


AUDIO_OPTIONS: dict[str, object] = {"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}


def _output_options(spec: RenderSpec) -> dict[str, object]:
    return {**_video_options(spec), **AUDIO_OPTIONS, "movflags": "+faststart"}


def _check_distinct_inputs(spec: RenderSpec) -> None:
    # ffmpeg-python merges identical nodes: the same file through the same
    # filters twice would become one branch feeding two places, which FFmpeg refuses.
    # A packed segment's pieces share a file, each read from its own offset: an input of its own.
    paths = [f"{c.path}" + (f" at {c.offset:.3f} s" if c.offset > 0 else "") for side in (spec.caller, spec.callee) for c in side.clips]
    paths += [str(side.avatar) for side in (spec.caller, spec.callee) if side.avatar is not None]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ValueError(f"each clip and avatar must be its own file; used twice: {', '.join(repeated)}")


def _arrange(panels: list, layout: Layout):
    """The caller's and callee's panels placed in the frame: stacked, then padded onto the background if need be."""
    a, b = layout.caller, layout.callee
    if (a.y, a.h, a.x + a.w) == (b.y, b.h, b.x):
        video, block = ffmpeg.filter(panels, "hstack", inputs=2), Rect(a.x, a.y, a.w + b.w, a.h)
    elif (a.x, a.w, a.y + a.h) == (b.x, b.w, b.y):
        video, block = ffmpeg.filter(panels, "vstack", inputs=2), Rect(a.x, a.y, a.w, a.h + b.h)
    else:
        raise ValueError(f"layout {layout.name}: the panels must touch in a row or a column")
    if block == Rect(0, 0, layout.width, layout.height):
        return video
    return video.filter("pad", layout.width, layout.height, block.x, block.y, color=BACKGROUND)


def build_command(spec: RenderSpec, output: Path, *, binary: str = "ffmpeg") -> list[str]:
    """The complete FFmpeg argument list (binary first) that renders ``spec`` into ``output``."""
    _check_distinct_inputs(spec)
    # Segmented sides: FFmpeg opens every segment's decoder at the start, and
    # on a threaded command line their frame threads only hold memory.
    segmented = max(len(spec.caller.clips), len(spec.callee.clips)) > 1
    one_thread = segmented and threaded_cli(binary)
    sides = [side_stream(side, spec, one_thread_decoders=one_thread) for side in (spec.caller, spec.callee)]
    video = _arrange(sides, spec.placement)
    audio = _audio(spec)
    streams, options = [video, audio], _output_options(spec)
    if spec.captions is not None:
        if spec.captions.burn is not None:
            # On the whole frame, once: the .ass file places each side's lines in its own region.
            streams[0] = burn(video, spec.captions.burn, spec.font)
        streams.append(ffmpeg.input(str(spec.captions.track)))
        options.update(track_output_options(spec.captions.language))
    args = (
        ffmpeg.output(*streams, str(output), **options)
        .global_args("-filter_complex_threads", str(FILTER_THREADS))
        .overwrite_output()
        .compile(cmd=binary)
    )
    return _graph_to_file_if_long(args, spec.workdir)


def build_chunk_command(spec: RenderSpec, window: Window, output: Path, *, binary: str = "ffmpeg") -> list[str]:
    """Frames ``window`` of the call's video, without sound, into ``output``: one chunk of a chunked render.

    The graph is the whole render's, fed only the pieces of each side that
    fall in the window and timed on the call's clock, so the highlight and the
    burned captions show in a chunk exactly what they show in a whole render;
    the chunk's own timestamps start at zero for the join. x264 opens every
    chunk with an IDR frame and its GOPs are closed (its default), so chunks
    concatenate without re-encoding.
    """
    _check_distinct_inputs(spec)
    sides = [side_stream(side, spec, one_thread_decoders=threaded_cli(binary), window=window) for side in (spec.caller, spec.callee)]
    video = _arrange(sides, spec.placement)
    if spec.captions is not None and spec.captions.burn is not None:
        # Only the cues around the window's frames: what libass draws on them, and what the chunk's digest needs.
        first, last = window
        cues = spec.workdir / f"captions-{first}.ass"
        whole = spec.captions.burn.read_text(encoding="utf-8")
        cues.write_text(ass_window(whole, (first - 0.5) / spec.fps, (last - 0.5) / spec.fps), encoding="utf-8")
        video = burn(video, cues, spec.font)
    video = video.filter("setpts", "PTS-STARTPTS")
    args = (
        # Exactly the window's frames: a piece held by tpad ends on a frame whose duration is the source's,
        # and the encoder's constant-rate output would repeat it past the window (2 frames seen at 15 fps).
        ffmpeg.output(video, str(output), an=None, f="mp4", **{"frames:v": window[1] - window[0]}, **_video_options(spec))
        .global_args("-filter_complex_threads", str(FILTER_THREADS))
        .overwrite_output()
        .compile(cmd=binary)
    )
    return _graph_to_file_if_long(args, spec.workdir, name=f"graph-{window[0]}.txt")


def build_audio_command(spec: RenderSpec, output: Path, *, binary: str = "ffmpeg") -> list[str]:
    """The whole call's sound track, in one pass, into ``output`` (an .m4a): a chunked render's audio.

    One pass over the whole call, so the sound is sample-continuous across the
    chunks' joins and the loudness gain is the one the two-pass mix measured.
    """
    return ffmpeg.output(_audio(spec), str(output), vn=None, **AUDIO_OPTIONS).overwrite_output().compile(cmd=binary)


def _audio(spec: RenderSpec):
    """The sound track: the recording's channels as they are, or the centered mix (:mod:`.mix`)."""
    recording = ffmpeg.input(file_url(spec.recording), **input_options(spec.recording, RECORDING)).audio
    return recording if spec.mix is None else mix.apply(recording, spec.mix, AUDIO_RATE)


def _graph_to_file_if_long(args: list[str], workdir: Path, *, name: str = "graph.txt") -> list[str]:
    index = args.index("-filter_complex")
    if len(args[index + 1]) <= INLINE_GRAPH_LIMIT:
        return args
    script = workdir / name
    script.write_text(args[index + 1], encoding="utf-8")
    return [*args[:index], graph_file_option(args[0]), str(script), *args[index + 2 :]]
