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

**Packing** (speech mode, ``SPEECH_PACKING``): a side's silences are mostly
the other side's turns, longer than a job's minimum, so jobs of contiguous
audio bill ~1.2 × the speech on turn-taking calls. A packed job's audio is
several stretches of the side laid end to end, the silences between them left
out: each :class:`Job` carries its *pieces*, ``(start in the call, end in the
call, offset in the job's audio)``, and the compositor shows each piece of the
job's video at its time in the call (:func:`plan_jobs`, :func:`packed_jobs`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Interval", "Piece", "Job", "plan_segments", "plan_jobs", "packed_jobs", "silences", "billed_grouping",
    "billed_seconds", "job_seconds", "JOB_SECONDS", "packed_limit", "PACK_FLOOR",
]

Interval = tuple[float, float]
#: A stretch of a packed job: (start in the call, end in the call, offset in the job's audio and video), seconds.
Piece = tuple[float, float, float]

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


@dataclass(frozen=True)
class Job:
    """One fal.ai job of a side: ``[start, end)`` of the call, contiguous (``pieces`` None) or packed.

    A packed job's audio is its pieces laid end to end: piece ``k`` covers
    ``[offset, offset + end - start)`` of the job's audio and video and
    ``[start, end)`` of the call. ``start``/``end`` are then the first
    piece's start and the last one's end (the span, not the length).
    """

    start: float
    end: float
    pieces: tuple[Piece, ...] | None = None

    @property
    def seconds(self) -> float:
        """The job's audio length: what fal generates and bills."""
        return job_seconds(self.start, self.end, self.pieces)


def job_seconds(start: float, end: float, pieces: Sequence[Sequence[Any]] | None) -> float:
    """The length of a job's audio (and video): its pieces' lengths added, or ``end - start`` for a contiguous one."""
    if not pieces:
        return end - start
    return round(sum(float(p[1]) - float(p[0]) for p in pieces), 3)


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
    stretches = _merge(_padded(speech, padding, duration), merge_gap)
    stretches = _merge([_widened(start, end, duration) for start, end in stretches], merge_gap)
    stretches = billed_grouping(stretches, min_billed=min_billed, max_seconds=max_seconds)
    segments: list[Interval] = []
    for start, end in stretches:
        segments.extend(_split(start, end, max_seconds, gaps))
    return segments


def _padded(speech: Sequence[Interval], padding: float, duration: float) -> list[Interval]:
    return [(max(0.0, start - padding), min(duration, end + padding)) for start, end in speech]


def plan_jobs(
    duration: float,
    speech: Sequence[Interval],
    *,
    mode: str,
    max_seconds: float,
    padding: float = 0.15,
    merge_gap: float = 1.5,
    min_billed: float = 0.0,
    pack: bool = False,
) -> list[Job]:
    """The side's fal.ai jobs: :func:`plan_segments`' contiguous ones, or packed ones (``pack``, speech mode only).

    Packed: the side's speech, padded and joined through pauses shorter than
    ``merge_gap`` (the avatar would only flicker to its still and back), is
    cut into stretches of at most ``max_seconds`` (in silences, as a long
    segment is), which :func:`packed_jobs` lays end to end into jobs.
    """
    if not pack or mode != "speech":
        spans = plan_segments(
            duration, speech, mode=mode, max_seconds=max_seconds, padding=padding, merge_gap=merge_gap, min_billed=min_billed
        )
        return [Job(start, end) for start, end in spans]
    if max_seconds <= MIN_SEGMENT:
        raise ValueError("max_seconds must exceed the minimum segment length")
    speech = [(max(0.0, s), min(duration, e)) for s, e in sorted(speech) if e > s]
    if duration <= 0 or not speech:
        return []
    gaps = silences(speech, duration)
    stretches: list[Interval] = []
    for start, end in _merge(_padded(speech, padding, duration), merge_gap):
        stretches.extend(_split(start, end, max_seconds, gaps))
    return packed_jobs(stretches, min_billed=min_billed, max_seconds=max_seconds, duration=duration)


# A tie breaker among plans that bill alike and have as many jobs: the one whose
# jobs are nearer equal length (the side is ready when its longest job is).
# Small enough never to outweigh JOB_SECONDS: one job fewer always wins.
BALANCE = 1e-7


#: The shortest packed job :func:`packed_limit` asks for: more, shorter jobs
#: than this save little time and each costs a submit, a download and a decoder.
PACK_FLOOR = 10.0
#: The fewest waves of the cap's slots a call's packed jobs are sized to (see :func:`packed_limit`).
WAVES = 2
#: How close :func:`packed_limit` searches the limit, seconds.
LIMIT_STEP = 0.25


def packed_limit(
    sides: Sequence[Sequence[Interval]], duration: float, *, slots: int, max_seconds: float, min_billed: float = 0.0,
    padding: float = 0.15, merge_gap: float = 1.5,
) -> float:
    """The longest packed job for a call whose sides speak ``sides``: its jobs fill whole waves of the fal cap.

    Packing up to ``max_seconds`` makes a few long jobs that all end together:
    the call waits for the longest, and its compose starts only then. And a
    call of 25 jobs on 10 slots takes three rounds of its longest job, where
    30 jobs a sixth shorter take three rounds of those. So the call's jobs
    (both sides, as :func:`plan_jobs` packs them) are held to ``waves`` ×
    ``slots``, with ``waves`` at least ``WAVES`` and as many as the longest
    job (``max_seconds``) needs, and the limit is the shortest that packs into
    that many: the generation then takes about the call's compute ÷ the cap,
    the least any schedule can. Slots go to a call's segments in their order in
    the call, so the first wave covers the call's start and ends while the next
    runs, and the chunks it completes are rendered early (docs/compositor.md).
    Never under ``PACK_FLOOR`` (and twice the model's minimum bill), so every
    job bills its speech. No cap (``slots`` 0) or no speech: ``max_seconds``.
    """
    speech = sum(end - start for side in sides for start, end in side)
    if slots <= 0 or speech <= 0:
        return max_seconds
    waves = max(WAVES, math.ceil(speech / (slots * max_seconds)))
    target = waves * slots

    def jobs(limit: float) -> int:
        return sum(
            len(plan_jobs(duration, side, mode="speech", max_seconds=limit, padding=padding, merge_gap=merge_gap,
                          min_billed=min_billed, pack=True))
            for side in sides
        )

    low = min(max_seconds, max(PACK_FLOOR, 2 * min_billed))
    if jobs(low) <= target:
        return low
    high = max_seconds
    if jobs(high) > target:
        return high
    while high - low > LIMIT_STEP:  # jobs(low) > target >= jobs(high): fewer jobs as the limit grows
        middle = (low + high) / 2
        low, high = (low, middle) if jobs(middle) <= target else (middle, high)
    return round(high, 3)


def packed_jobs(stretches: Sequence[Interval], *, min_billed: float, max_seconds: float, duration: float | None = None) -> list[Job]:
    """``stretches`` (sorted, apart, each at most ``max_seconds``) packed into jobs billing the least in all.

    A job is a run of consecutive stretches laid end to end; its audio is
    their lengths added, at most ``max_seconds``, and it bills
    ``max(length, min_billed)``. Every job at least the minimum bills exactly
    the speech it holds, so the plan pays the minimum's top-up at most where
    a side has too little speech to fill one. An exact dynamic programme
    (like :func:`billed_grouping`); of plans billed alike it takes the fewest
    jobs, then the most even. Deterministic: the same stretches always give
    the same jobs (a redelivered audio message re-plans the same cut).

    A job shorter than ``MIN_SEGMENT`` (a side whose only sound is an "mm")
    has its first piece widened to it, as a contiguous segment would be.
    """
    n = len(stretches)
    if n == 0:
        return []
    lengths = [round(end - start, 3) for start, end in stretches]
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        total = 0.0
        for i in range(j - 1, -1, -1):
            total += lengths[i]
            if i < j - 1 and total > max_seconds + 1e-9:
                break
            cost = best[i] + max(total, min_billed) + JOB_SECONDS + BALANCE * total * total
            if cost < best[j] - 1e-12:
                best[j], cut[j] = cost, i
    runs: list[list[Interval]] = []
    j = n
    while j > 0:
        runs.append(list(stretches[cut[j] : j]))
        j = cut[j]
    runs.reverse()
    jobs = []
    for index, run in enumerate(runs):
        if sum(e - s for s, e in run) < MIN_SEGMENT:
            low = runs[index - 1][-1][1] if index else 0.0
            high = runs[index + 1][0][0] if index + 1 < len(runs) else (duration if duration is not None else math.inf)
            run = [_widened_within(run, low, high), *run[1:]]
        jobs.append(_job(run))
    return jobs


def _widened_within(run: Sequence[Interval], low: float, high: float) -> Interval:
    """The run's first stretch grown evenly so the run lasts ``MIN_SEGMENT``, within ``[low, high]`` and clear of the next stretch."""
    first, last = run[0]
    limit = run[1][0] if len(run) > 1 else high
    short = MIN_SEGMENT - sum(e - s for s, e in run)
    start = max(low, first - short / 2)
    end = min(limit, last + short - (first - start))
    start = max(low, min(start, end - (last - first) - short))  # the end met a wall: grow backwards instead
    return round(start, 3), round(end, 3)


def _job(run: Sequence[Interval]) -> Job:
    """A job of consecutive stretches: contiguous when it is one stretch, packed otherwise."""
    if len(run) == 1:
        return Job(run[0][0], run[0][1])
    pieces, offset = [], 0.0
    for start, end in run:
        pieces.append((start, end, round(offset, 3)))
        offset += round(end - start, 3)
    return Job(run[0][0], run[-1][1], tuple(pieces))


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
