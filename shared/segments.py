"""Where a side's video is cut into fal.ai jobs: pure functions, no I/O.

A *segment* is a stretch ``(start, end)`` of one side's audio that becomes one
fal.ai job. Every model has a maximum audio length, and each side of a call is
silent about half the time, so:

- ``full`` mode covers the whole side in segments no longer than the model's
  maximum, cutting inside silences so no word is split;
- ``speech`` mode covers only where the side speaks (padded, merged when close)
  and the compositor fills the rest with the idle avatar.

A side that never speaks has no segments, in either mode: nothing is paid for.
The audio stage (which has FFmpeg) cuts the planned segments; the generation
stage submits them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["Interval", "plan_segments", "silences"]

Interval = tuple[float, float]

# No segment is shorter than this (unless the whole side is): a fal job has a
# fixed cost and start-up, Kling's avatar refuses audio under 2 s and Stable
# Avatar bills at least 4 s, and a 0.2 s clip makes a poor video anyway.
MIN_SEGMENT = 2.0


def silences(speech: Sequence[Interval], duration: float) -> list[Interval]:
    """The gaps between speech intervals (and before the first / after the last)."""
    gaps, cursor = [], 0.0
    for start, end in sorted(speech):
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < duration:
        gaps.append((cursor, duration))
    return gaps


def _cut_points(start: float, end: float, max_len: float, gaps: Sequence[Interval]) -> list[float]:
    """Cut ``[start, end)`` into pieces of at most ``max_len``, inside silences where there are any.

    Each cut is the latest point that lies in a silence (its middle, or the
    limit when the silence runs past it), so pieces are long and few; only a
    stretch with no silence at all is cut hard at the limit. No cut leaves a
    last piece shorter than ``MIN_SEGMENT``.
    """
    cuts, cursor = [], start
    while end - cursor > max_len:
        limit = min(cursor + max_len, end - MIN_SEGMENT)
        inside = [min((a + b) / 2, limit) for a, b in gaps if a < limit and b > cursor + MIN_SEGMENT]
        inside = [c for c in inside if cursor + MIN_SEGMENT <= c]
        cut = max(inside) if inside else limit
        cuts.append(cut)
        cursor = cut
    return cuts


def _split(start: float, end: float, max_len: float, gaps: Sequence[Interval]) -> list[Interval]:
    points = [start, *_cut_points(start, end, max_len, gaps), end]
    return [(round(a, 3), round(b, 3)) for a, b in itertools.pairwise(points)]


def plan_segments(
    duration: float,
    speech: Sequence[Interval],
    *,
    mode: str,
    max_seconds: float,
    padding: float = 0.3,
    merge_gap: float = 1.5,
) -> list[Interval]:
    """The segments of one side, in order, each at most ``max_seconds`` long."""
    if mode not in ("full", "speech"):
        raise ValueError(f"unknown generation mode {mode!r}")
    if max_seconds <= MIN_SEGMENT:
        raise ValueError("max_seconds must exceed the minimum segment length")
    speech = [(max(0.0, s), min(duration, e)) for s, e in sorted(speech) if e > s]
    if duration <= 0 or not speech:
        return []
    gaps = silences(speech, duration)
    if mode == "full":
        return _split(0.0, duration, max_seconds, gaps)
    # Speech mode: pad, merge stretches separated by less than merge_gap, then
    # widen what is still shorter than MIN_SEGMENT (a lone "mm") and merge again.
    padded = [(max(0.0, start - padding), min(duration, end + padding)) for start, end in speech]
    stretches = _merge(padded, merge_gap)
    stretches = _merge([_widened(start, end, duration) for start, end in stretches], merge_gap)
    segments: list[Interval] = []
    for start, end in stretches:
        segments.extend(_split(start, end, max_seconds, gaps))
    return segments


def _merge(intervals: Sequence[Interval], merge_gap: float) -> list[Interval]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start - merged[-1][1] < merge_gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _widened(start: float, end: float, duration: float) -> Interval:
    """``[start, end)`` grown evenly to ``MIN_SEGMENT`` (within the side) if it is shorter."""
    short = MIN_SEGMENT - (end - start)
    if short <= 0:
        return start, end
    end = min(duration, max(0.0, start - short / 2) + MIN_SEGMENT)
    return max(0.0, end - MIN_SEGMENT), end
