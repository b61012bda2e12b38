"""What the final video is made of, decided before any FFmpeg runs: pure data and arithmetic.

The graph builders (:mod:`.graph`, :mod:`.panel`) only translate a
:class:`RenderSpec` into filters. Everything that is arithmetic (panel fitting,
frame-exact timelines, highlight intervals) lives here, where it is tested
without FFmpeg.

Time is counted in output frames: a side's pieces are cut at whole frames of
the output rate, so they add up to exactly the call's length and nothing drifts
however many segments a side has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.ffmpeg import VideoInfo

from .layouts import Layout, side_by_side
from .mix import AudioMix

__all__ = [
    "Interval",
    "Clip",
    "SideSpec",
    "RenderSpec",
    "CaptionFiles",
    "Piece",
    "fit",
    "panel_size",
    "frame_at",
    "total_frames",
    "timeline",
    "speaking",
    "enable_expr",
]

Interval = tuple[float, float]


@dataclass(frozen=True)
class Clip:
    """One generated segment video (or one piece of a packed one), laid on its side's timeline at ``start``.

    ``offset``: where in the video the clip begins. A packed segment's video is
    its pieces laid end to end (``shared.segments``), so it is shown as one clip
    per piece, each from its own offset, at its own time in the call.
    """

    path: Path
    start: float
    end: float
    info: VideoInfo
    focus: tuple[float, float] | None = None  # the face's centre (fractions of the picture) when known: where a crop centres
    offset: float = 0.0


@dataclass(frozen=True)
class SideSpec:
    """One panel. With clips it shows them (idle avatar in between); without, a local panel."""

    side: str
    label: str
    avatar: Path | None  # still image for the idle frames and the local panel; None: a coloured card
    clips: tuple[Clip, ...] = ()
    audio: Path | None = None  # the local panel's sound (its waveform)…
    audio_channel: int | None = None  # …or this channel of a stereo ``audio``
    speech: tuple[Interval, ...] = ()  # when this side speaks: the highlight
    label_font: Path | None = None  # the font that has the label's characters (labels.py); None: RenderSpec.font
    label_size: int | None = None  # the size that fits the panel (labels.py); None: the panel's default

    @property
    def is_local(self) -> bool:
        return not self.clips


@dataclass(frozen=True)
class CaptionFiles:
    """The captions a render carries, as files in its workdir (:mod:`.captions` writes them)."""

    burn: Path | None  # the .ass file libass draws on the frame; None: not burned
    track: Path  # the subtitle track's source, muxed as mov_text
    language: str  # the track's ISO 639-2 tag


@dataclass(frozen=True)
class RenderSpec:
    recording: Path  # the call's stereo audio: the video's sound track
    duration: float  # seconds; the video is exactly this long
    caller: SideSpec  # left (top in vertical)
    callee: SideSpec  # right (below in vertical)
    workdir: Path  # the call's temp folder (label text files, long graphs)
    width: int = 640  # one panel of side-by-side
    height: int = 480
    fps: int = 25
    preset: str = "veryfast"
    crf: int = 23
    x264_params: str = ""
    font: Path | None = None  # None: no labels
    mix: AudioMix | None = None  # the centered mix and its measured loudness; None: the recording's channels as they are
    layout: Layout | None = None  # None: side-by-side of width×height panels
    captions: CaptionFiles | None = None  # None: a video without captions

    @property
    def frames(self) -> int:
        return total_frames(self.duration, self.fps)

    @property
    def placement(self) -> Layout:
        return self.layout if self.layout is not None else side_by_side(self.width, self.height)


@dataclass(frozen=True)
class Piece:
    """A run of ``frames`` output frames of one side: clip number ``clip``, or the idle avatar (None)."""

    frames: int
    clip: int | None


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest even size with ``width:height``'s shape inside the box (never stretched)."""
    scale = min(box_width / width, box_height / height)
    return min(box_width, _even(width * scale)), min(box_height, _even(height * scale))


def panel_size(sides: Sequence[SideSpec], box_width: int, box_height: int) -> tuple[int, int]:
    """Each panel's size: the box, shrunk to the side videos' own shape when they all share one.

    fal's talking heads are square (or 16:9) and the box is 4:3, so a fixed
    panel would pad every frame with bars the encoder still has to code:
    a 512×512 source in 640×480 panels leaves a quarter of the frame black,
    which x264 pays for (measured: docs/benchmarks.md, section "Panels in
    the side videos' shape"). Mixed
    shapes (or none: local panels only) keep the box. A sliver of a shape
    (under a quarter of the box either way) keeps the box too.
    """
    shapes = {fit(c.info.width, c.info.height, box_width, box_height) for side in sides for c in side.clips}
    if len(shapes) != 1:
        return box_width, box_height
    width, height = shapes.pop()
    if width * 4 < box_width or height * 4 < box_height:
        return box_width, box_height
    return width, height


def frame_at(seconds: float, fps: int) -> int:
    """The output frame shown at ``seconds``: rounded half up, the same way for every boundary."""
    return math.floor(seconds * fps + 0.5)


def total_frames(duration: float, fps: int) -> int:
    return max(1, frame_at(duration, fps))


def timeline(spans: Sequence[Interval], duration: float, fps: int) -> list[Piece]:
    """Cover ``[0, duration)`` with the clips at their start times and idle pieces between them.

    Overlapping spans are clipped to start where the previous one ended; spans
    past the end of the call are trimmed; empty ones are dropped.
    """
    total = total_frames(duration, fps)
    pieces: list[Piece] = []
    cursor = 0
    for index, (start, end) in sorted(enumerate(spans), key=lambda item: item[1][0]):
        first = max(cursor, min(total, frame_at(start, fps)))
        last = min(total, frame_at(end, fps))
        if last <= first:
            continue
        if first > cursor:
            pieces.append(Piece(first - cursor, None))
        pieces.append(Piece(last - first, index))
        cursor = last
    if cursor < total:
        pieces.append(Piece(total - cursor, None))
    return pieces


def speaking(speech: Sequence[Sequence[float]], duration: float, *, bridge: float = 0.3, shortest: float = 0.1) -> list[Interval]:
    """Speech intervals cleaned for display: clipped to the call, close ones bridged, blips dropped.

    A highlight that flickers off for a breath between two words reads as
    noise, and every interval costs a term in the filter expression.
    """
    merged: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in speech):
        start, end = max(0.0, start), min(duration, end)
        if end <= start:
            continue
        if merged and start - merged[-1][1] <= bridge:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(round(s, 2), round(e, 2)) for s, e in merged if e - s >= shortest]


def enable_expr(intervals: Sequence[Interval]) -> str | None:
    """A timeline ``enable`` expression true inside the intervals (None: never).

    The terms are summed as a balanced tree, ``(a+b)+(c+d)``: FFmpeg's
    expression parser refuses a flat sum of more than about 100 terms, which a
    long call's turns exceed, and a balanced one nests only log2(n) deep, so
    even a long call's expression is cheap to evaluate on every frame
    (measured: docs/benchmarks.md, section "The highlight's expression").
    """
    terms = [f"between(t,{s:g},{e:g})" for s, e in intervals]
    if not terms:
        return None

    def tree(part: list[str]) -> str:
        if len(part) <= 2:
            return "+".join(part)
        middle = len(part) // 2
        return f"({tree(part[:middle])})+({tree(part[middle:])})"

    return tree(terms)
