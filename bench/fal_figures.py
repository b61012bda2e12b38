"""The fal benchmark's arithmetic (bench/fal_latency.py), apart from the run so it can be tested.

Two clocks meet in that benchmark: the simulator runs fal's clock ``scale``
times faster than the wall clock, while the pipeline around fal (download,
split, compose, the messages) runs at real speed. Every figure here says
which clock it is on: ``sim`` seconds are fal's (what a real fal would take),
``wall`` seconds are what the benchmark's clock measured. A fal duration
becomes wall seconds by dividing by the scale; pipeline work has no sim
equivalent, so the goals are compared on the wall clock (see :func:`video_goal`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "PIPELINE_ALLOWANCE", "PLAN_TIMEOUT", "bound", "video_goal", "burst_goal", "plan_proper_cancelled",
    "Clock", "post_offsets", "burst_long_calls", "row_timeout", "poll_interval", "variant",
    "MARK", "scale_marker", "row_key", "sort_key", "kept_rows",
]

#: Issue #26's goal is webhook → video ≤ 1.2 × B + 30 s: the 30 s is the pipeline's own work, at real speed.
PIPELINE_ALLOWANCE = 30.0
#: The original plan's fixed job timeout, fal seconds (scaled by the time scale like the rest of fal's clock).
PLAN_TIMEOUT = 600.0


def bound(computes: Iterable[float], concurrency: int) -> float:
    """B = max(the longest job's compute, all jobs' compute ÷ the concurrency limit): the least any scheduler can do.

    ``computes``: each job's compute on fal's clock (its video seconds × the
    model's speed, not the seconds billed, which a model's minimum rounds up).
    """
    computes = list(computes)
    return max(max(computes, default=0.0), sum(computes) / max(1, concurrency))


def video_goal(bound_sim: float, scale: float) -> float:
    """Webhook → video goal, wall seconds: 1.2 × B with B on the wall clock (B ÷ scale), plus 30 s of pipeline at real speed."""
    return 1.2 * bound_sim / scale + PIPELINE_ALLOWANCE


def burst_goal(bound_sim: float, scale: float) -> float:
    """A burst's 1-minute call may take 2 × its own B (on the wall clock) plus the same 30 s of pipeline."""
    return 2 * bound_sim / scale + PIPELINE_ALLOWANCE


def plan_proper_cancelled(call_seconds: float, speed: float, timeout: float = PLAN_TIMEOUT) -> bool:
    """Whether the original plan's one job per side (the whole side) outlives its fixed timeout.

    A side is as long as the call; its job computes ``call_seconds × speed``
    fal seconds, and the plan cancels it at ``timeout``: at speed 2 every side
    longer than 5 minutes is cancelled and the call gets no video.
    """
    return call_seconds * speed > timeout


@dataclass(frozen=True)
class Clock:
    """The benchmark's clock (``time.monotonic``) and the database's (naive UTC written by the workers), tied once."""

    monotonic: float
    epoch: float

    def from_db(self, stamp: dt.datetime) -> float:
        """A naive-UTC database timestamp on the benchmark's monotonic clock."""
        aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
        return aware.timestamp() - self.epoch + self.monotonic


def post_offsets(calls: int, window: float = 50.0) -> list[float]:
    """When each of a burst's calls is posted, seconds from the first: evenly over ``window`` (at most 1 s apart)."""
    gap = min(1.0, window / max(1, calls))
    return [i * gap for i in range(calls)]


def burst_long_calls(calls: int) -> int:
    """How many long calls lead a burst of ``calls`` by default: one per 25 (two of 50), one from 10, none in a smaller one.

    The long calls are there to show that short calls behind them are not
    starved; a handful of calls is a smoke run, where a 10-minute call would only add minutes of compose.
    """
    return calls // 25 if calls >= 25 else int(calls >= 10)


def row_timeout(call_seconds: float, speed: float, scale: float) -> float:
    """How long to wait for one call before calling it stuck, wall seconds: generous, it is a guard, not a goal.

    The slowest way is the plan's: sides cut at the model's 300 s limit, so one
    job's compute is up to 300 × speed fal seconds, a second wave of them when
    fal's concurrency is full, and then the whole call's compose (≈ 10 s a
    minute on a loaded two-core machine).
    """
    generation = 2 * min(call_seconds, 300.0) * speed * 2 / scale + call_seconds * speed / scale
    return 300.0 + generation + call_seconds * 0.5


def poll_interval(scale: float, production: float = 7.0, floor: float = 0.5) -> float:
    """FAL_POLL_INTERVAL for a run at ``scale``: production's on fal's clock, but not below ``floor`` wall seconds.

    Polls are messages through RabbitMQ and the generation worker: faster than
    twice a second, sixty running jobs would load the two cores the compose needs.
    """
    return max(floor, production / scale)


def variant(*parts: object) -> str:
    """The media variant of one measured call: a name that differs for every call of a run, stable across runs."""
    return "-".join(str(p) for p in parts)


# -- keeping an earlier run's rows ----------------------------------------------------------------------
#
# A run of only the long calls (--long) or only the burst must not erase what an earlier run measured:
# the section keeps every row this run did not measure, marked with when it was measured, as long as
# the earlier run used the same table and the same time scale (figures on other clocks do not mix).

MARK = "†"


def scale_marker(scale: float) -> str:
    """A line in the section, invisible in the rendered page, that says which clock its rows are on."""
    return f"<!-- fal-latency rows: scale={scale:g} -->"


def row_key(line: str) -> tuple[str, float, str]:
    """(way, minutes, compositors) of a table row: what one measurement is."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells[0].split()[0], float(cells[1].split()[0]), cells[2]


def sort_key(line: str) -> tuple[int, float, str]:
    way, minutes, compositors = row_key(line)
    return (0 if way == "ours" else 1, minutes, compositors)


def kept_rows(old: str | None, header: str, scale: float, measured: set[tuple[str, float, str]]) -> tuple[list[str], list[str]]:
    """The rows of an earlier section (``old``) this run did not measure, and its burst unless this run has one.

    Rows are kept only if the earlier section has the same ``header`` and was on the same scale; each kept
    row's way is marked † with the time it was measured (a row kept twice keeps its first mark).
    """
    if not old or header not in old or scale_marker(scale) not in old:
        return [], []
    when = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d) UTC\)", old)
    stamp = when[1] if when else "earlier"
    rows, burst = [], []
    for line in old.splitlines():
        if line.startswith(("| ours", "| plan")) and row_key(line) not in measured:
            if MARK not in line.split("|")[1]:
                way = line.split("|")[1]
                line = line.replace(f"|{way}|", f"|{way.rstrip()} {MARK} {stamp} |", 1)
            rows.append(line)
        elif "**Burst**" in line and line.startswith(("**Burst**", MARK)) or (burst and line.startswith("- PROBLEM")):
            burst.append(f"{MARK} {stamp}: {line}" if line.startswith("**Burst**") else line)
    return rows, burst
