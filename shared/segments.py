"""Where a side's video is cut into fal.ai jobs: pure functions, no I/O.

A *segment* is a stretch ``(start, end)`` of one side's audio that becomes one
fal.ai job. Every model has a maximum audio length, and each side of a call is
silent about half the time, so:

- ``full`` mode covers the whole side in segments no longer than the model's
  maximum, cutting inside silences so no word is split;
- ``speech`` mode covers only where the side speaks (padded, merged when close)
  and the compositor fills the rest with the idle avatar. Neighbouring
  stretches are then grouped into jobs the way that bills least: fal bills a
  job at least the model's ``min_seconds`` (Stable Avatar: 4 s), so two short
  stretches a little apart cost less as one job through the silence between
  them than as two jobs each paying the minimum (:func:`billed_grouping`).

A side that never speaks has no segments, in either mode: nothing is paid for.
The audio stage (which has FFmpeg) cuts the planned segments; the generation
stage submits them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

__all__ = ["Interval", "plan_segments", "silences", "billed_grouping", "billed_seconds", "JOB_SECONDS"]

Interval = tuple[float, float]

# No segment is shorter than this (unless the whole side is): a fal job has a
# fixed cost and start-up, Kling's avatar refuses audio under 2 s and Stable
# Avatar bills at least 4 s, and a 0.2 s clip makes a poor video anyway.
MIN_SEGMENT = 2.0

# What one job more is worth in billed seconds when grouping stretches: a tie
# breaker, so of two plans billed alike the one with fewer jobs (less fixed
# submit/poll/download overhead) wins, without paying real seconds for it.
JOB_SECONDS = 0.01


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
    min_billed: float = 0.0,
) -> list[Interval]:
    """The segments of one side, in order, each at most ``max_seconds`` long.

    ``min_billed``: the least the model bills a job (``FalModel.min_seconds``);
    speech mode groups its stretches so the side bills least (:func:`billed_grouping`).
    """
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
    stretches = billed_grouping(stretches, min_billed=min_billed, max_seconds=max_seconds)
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


def billed_seconds(segments: Sequence[Interval], min_billed: float) -> float:
    """What fal bills for ``segments``, one job each: every job at least ``min_billed`` seconds."""
    return sum(max(end - start, min_billed) for start, end in segments)


def billed_grouping(stretches: Sequence[Interval], *, min_billed: float, max_seconds: float) -> list[Interval]:
    """``stretches`` (sorted, apart) grouped into consecutive runs, one job each, billing the least in all.

    A run spans its first stretch's start to its last one's end (the silences
    inside it are generated too) and bills ``max(span, min_billed)``; a run of
    several stretches never spans more than ``max_seconds`` (a single stretch
    may: it is split later). Merging through a gap pays for the gap and saves a
    minimum top-up: it is done exactly when that is cheaper, e.g. two 1.5 s
    stretches 2 s apart at a 4 s minimum bill 5 s as one job instead of 8 s as
    two, while two 3.5 s turns 5 s apart stay two jobs (8 s, not 12 s). An
    exact dynamic programme over the stretches: runs are bounded by
    ``max_seconds``, so it is linear in the side's turns for a fixed limit.
    """
    n = len(stretches)
    if n < 2 or (min_billed <= 0 and JOB_SECONDS <= 0):
        return list(stretches)
    # best[j]: the least cost of the first j stretches; cut[j]: where the last run of that plan begins.
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        end = stretches[j - 1][1]
        for i in range(j - 1, -1, -1):
            span = end - stretches[i][0]
            if i < j - 1 and span > max_seconds:
                break
            cost = best[i] + max(span, min_billed) + JOB_SECONDS
            if cost < best[j] - 1e-9:
                best[j], cut[j] = cost, i
    runs: list[Interval] = []
    j = n
    while j > 0:
        i = cut[j]
        runs.append((stretches[i][0], stretches[j - 1][1]))
        j = i
    return runs[::-1]
