"""The overview's numbers, each one SQL aggregate over ``calls``: nothing loads rows into Python.

PostgreSQL (production) and SQLite (the demo) both answer every query; where
their SQL differs (truncating a time to its hour, a time difference in seconds,
percentiles) the dialect is asked for and the matching expression used.

- :func:`hours_ended`: calls that ended per hour and how (completed, partial,
  failed), with their fal.ai spend: ``fal_cost_usd`` where the generation stage
  recorded it, otherwise the seconds of video fal generated (times
  the model's list price on the page). Closed hours come from a rollup table
  (``shared.overview_store``), the open hour is counted live.
- :func:`in_progress`: calls not ended now.
- :func:`durations`: p50 and p95 of each stage's time and of webhook → video
  (the row's ``created_at``, when the webhook arrived, to the final video) of
  the calls that ended in the window, from per-hour buckets (the Prometheus
  stage histogram's bounds) interpolated as ``histogram_quantile`` does: a
  week's percentiles without sorting a week of calls.
- :func:`failure_reasons`: the commonest errors (their first
  :data:`REASON_CHARS` characters) of the failed and partial calls that ended
  in the window, with counts.

Everything but the banners' two queries comes from :func:`hours_ended`'s one read.

Every query is bounded by a window of ``created_at`` or of the end time, so the
indexes the migration adds (shared/migrations.py's console indexes) turn a
million-row table into the window's rows only, and the week's chart reads the
rollup (docs/console.md, "Scale", has the figures and the reasons).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from peewee import Database, PostgresqlDatabase

from shared.calls import REASON_CHARS
from shared.db import database
from shared.models import STAGES, VideoStatus
from shared.overview_store import OverviewHour, OverviewReason

__all__ = [
    "OUTCOMES", "REASON_CHARS", "Hour", "Durations", "hours_ended", "in_progress", "durations", "failure_reasons", "quantile",
    "DURATION_BOUNDS", "MEASURES",
    "floor_hour", "is_postgres", "failure_rate", "stuck_calls", "STUCK_SQL",
]

OUTCOMES = ("completed", "partial", "failed")
FILL_HOURS = 6  # closed hours counted per statement when the rollup is filled
SETTLE = dt.timedelta(minutes=5)
_TERMINAL = ", ".join(f"'{s}'" for s in VideoStatus.TERMINAL)


def is_postgres(db: Database | None = None) -> bool:
    # isinstance, not the class's name: the web app's pooled database is a PooledPostgresqlDatabase.
    return isinstance(db or database.obj, PostgresqlDatabase)


def _seconds(start: str, end: str) -> str:
    if is_postgres():
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    sql = sql if is_postgres() else sql.replace("%s", "?")
    return list(database.execute_sql(sql, params).fetchall())


# Upper bounds (seconds) of the duration buckets: the Prometheus stage histogram's (shared/metrics.py).
DURATION_BOUNDS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
MEASURES = (*STAGES, "webhook → video")


@dataclass
class Hour:
    """Call endings of one hour, their fal.ai spend, stage times (cumulative buckets) and failure reasons."""

    completed: int = 0
    partial: int = 0
    failed: int = 0
    fal_cost_usd: float = 0.0  # recorded
    fal_seconds: float = 0.0  # generated seconds of the calls without a recorded cost
    durations: dict[str, list[int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def ended(self) -> int:
        return self.completed + self.partial + self.failed


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _hour_expr() -> str:
    column = "video_processing_completed_at"
    return f"date_trunc('hour', {column})" if is_postgres() else f"strftime('%Y-%m-%d %H:00:00', {column})"


def _moment(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def _duration_columns() -> list[tuple[str, str]]:
    columns = [(stage, _seconds(f"{stage}_started_at", f"{stage}_finished_at")) for stage in STAGES]
    # Webhook → video: only for calls that have a video (a failed call's end is not a video).
    webhook = _seconds("created_at", "video_processing_completed_at")
    columns.append(("webhook → video", f"CASE WHEN video_status IN ('completed', 'partial') THEN {webhook} END"))
    return columns


def _count_hours(start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, Hour]:
    """Everything an Hour holds for the hours of ``[start, end)``, counted from ``calls`` in two queries."""
    ended = f"video_processing_completed_at >= %s AND video_processing_completed_at < %s AND video_status IN ({_TERMINAL})"
    generated = " + ".join(
        f"CASE WHEN {side}_state = 'generated' THEN COALESCE({side}_duration, 0) ELSE 0 END" for side in ("caller", "callee")
    )
    buckets = []
    for _, expr in _duration_columns():
        buckets += [f"SUM(CASE WHEN {expr} <= {bound} THEN 1 ELSE 0 END)" for bound in DURATION_BOUNDS]
        buckets.append(f"COUNT({expr})")
    rows = _rows(
        f"SELECT {_hour_expr()}, SUM(CASE WHEN video_status = 'completed' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN video_status = 'partial' THEN 1 ELSE 0 END), SUM(CASE WHEN video_status = 'failed' THEN 1 ELSE 0 END), "
        f"SUM(fal_cost_usd), SUM(CASE WHEN fal_cost_usd IS NULL THEN {generated} ELSE 0 END), {', '.join(buckets)} "
        f"FROM calls WHERE {ended} GROUP BY 1",
        (start, end),
    )
    found = {}
    width = len(DURATION_BOUNDS) + 1
    for bucket, completed, partial, failed, cost, seconds, *counts in rows:
        durations = {name: [int(c or 0) for c in counts[i * width:(i + 1) * width]] for i, name in enumerate(MEASURES)}
        found[_moment(bucket)] = Hour(
            int(completed or 0), int(partial or 0), int(failed or 0), float(cost or 0), float(seconds or 0), durations
        )
    for bucket, reason, count in _rows(
        f"SELECT {_hour_expr()}, SUBSTR(video_error_message, 1, {REASON_CHARS}), COUNT(*) FROM calls "
        f"WHERE {ended} AND video_status IN ('failed', 'partial') AND video_error_message IS NOT NULL GROUP BY 1, 2",
        (start, end),
    ):
        found.setdefault(_moment(bucket), Hour()).reasons[str(reason)] = int(count)
    return found


def hours_ended(first: dt.datetime, now: dt.datetime) -> dict[dt.datetime, Hour]:
    """Endings per hour from the hour ``first`` to now: closed hours from the rollup, the open hour counted live.

    An hour is closed SETTLE after its end (a transaction that ended a call at 13:59:59
    has committed by 14:05). Closed hours missing from the rollup (``shared.overview_store``)
    are counted in one pass and stored; two workers doing it at once store the same rows.
    """
    first = floor_hour(first)
    closed = floor_hour(now - SETTLE)  # hours before this one are closed
    # Plain tuples, not peewee models: a week is 168 hours and a thousand reasons, read on every page load.
    stored = {
        _moment(hour): Hour(int(completed), int(partial), int(failed), float(cost), float(seconds), json.loads(durations or "{}"))
        for hour, completed, partial, failed, cost, seconds, durations in _rows(
            "SELECT hour, completed, partial, failed, fal_cost_usd, fal_seconds, durations FROM callreel_overview_hours "
            "WHERE hour >= %s AND hour < %s", (first, closed),
        )
    }
    for hour, reason, calls in _rows(
        "SELECT hour, reason, calls FROM callreel_overview_reasons WHERE hour >= %s AND hour < %s", (first, closed)
    ):
        if _moment(hour) in stored:
            stored[_moment(hour)].reasons[str(reason)] = int(calls)
    wanted, moment = [], first
    while moment < closed:
        if moment not in stored:
            wanted.append(moment)
        moment += dt.timedelta(hours=1)
    counted: dict[dt.datetime, Hour] = {}
    for chunk in range(0, len(wanted), FILL_HOURS):
        # A few hours a statement: a week's first count stays far inside DB_STATEMENT_TIMEOUT.
        span = wanted[chunk:chunk + FILL_HOURS]
        counted.update(_count_hours(span[0], span[-1] + dt.timedelta(hours=1)))
    if wanted:
        hours, reasons = [], []
        for moment in wanted:
            hour = stored[moment] = counted.get(moment, Hour())
            hours.append({
                "hour": moment, "completed": hour.completed, "partial": hour.partial, "failed": hour.failed,
                "fal_cost_usd": hour.fal_cost_usd, "fal_seconds": hour.fal_seconds, "durations": json.dumps(hour.durations),
                "computed_at": now,
            })
            reasons += [{"hour": moment, "reason": reason, "calls": n} for reason, n in hour.reasons.items()]
        with database.atomic():
            for batch in range(0, len(hours), 100):
                OverviewHour.insert_many(hours[batch:batch + 100]).on_conflict_ignore().execute()
            for batch in range(0, len(reasons), 100):
                OverviewReason.insert_many(reasons[batch:batch + 100]).on_conflict_ignore().execute()
    stored.update(_count_hours(max(first, closed), now + dt.timedelta(hours=1)))
    return stored


def in_progress() -> int:
    """Calls not ended now (the in-flight partial index answers it)."""
    ((count,),) = _rows(f"SELECT COUNT(*) FROM calls WHERE video_status IS NULL OR video_status NOT IN ({_TERMINAL})", ())
    return int(count)


@dataclass(frozen=True)
class Durations:
    """p50 and p95 in seconds, read from the buckets (None: no call), the bucket each lies in, and how many calls."""

    name: str
    count: int
    p50: float | None
    p95: float | None


def quantile(fraction: float, cumulative: list[int]) -> float | None:
    """The ``fraction`` quantile of cumulative bucket counts (last: all), interpolated in its bucket as Prometheus does.

    Past the last bound there is no upper end: the last bound is returned (the page says "over").
    """
    total = cumulative[-1] if cumulative else 0
    if not total:
        return None
    rank = max(1, -(-int(fraction * total * 1000) // 1000))  # the nearest rank, ceil(fraction × n)
    lower, below = 0.0, 0
    for bound, count in zip(DURATION_BOUNDS, cumulative, strict=False):
        if count >= rank:
            return round(lower + (bound - lower) * (rank - below) / (count - below), 3)
        lower, below = float(bound), count
    return float(DURATION_BOUNDS[-1])


def durations(hours: dict[dt.datetime, Hour], since: dt.datetime) -> list[Durations]:
    """p50/p95 of each stage's time and of webhook → video, over the calls that ended since the hour ``since``."""
    width = len(DURATION_BOUNDS) + 1
    found = []
    for name in MEASURES:
        total = [0] * width
        for moment, hour in hours.items():
            if moment >= floor_hour(since):
                for i, count in enumerate(hour.durations.get(name, ())):
                    total[i] += count
        found.append(Durations(name, total[-1], quantile(0.5, total), quantile(0.95, total)))
    return found


def failure_reasons(hours: dict[dt.datetime, Hour], since: dt.datetime, limit: int = 8) -> list[tuple[str, int]]:
    """The commonest failure reasons of the calls that ended (failed or partial) since the hour ``since``."""
    totals: dict[str, int] = {}
    for moment, hour in hours.items():
        if moment >= floor_hour(since):
            for reason, count in hour.reasons.items():
                totals[reason] = totals.get(reason, 0) + count
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]


def failure_rate(since: dt.datetime) -> tuple[int, int]:
    """(failed, ended) among the calls that ended since ``since``: the alert's numbers."""
    ((failed, ended),) = _rows(
        "SELECT COALESCE(SUM(CASE WHEN video_status = 'failed' THEN 1 ELSE 0 END), 0), COUNT(*) FROM calls "
        f"WHERE video_processing_completed_at >= %s AND video_status IN ({_TERMINAL})",
        (since,),
    )
    return int(failed), int(ended)


# The same text on both databases; the in-flight partial index (shared/migrations.py) serves it.
STUCK_SQL = (
    f"SELECT stage, COUNT(*) FROM calls WHERE (video_status IS NULL OR video_status NOT IN ({_TERMINAL})) "
    f"AND (CASE {' '.join(f'WHEN stage = {chr(39)}{s}{chr(39)} THEN {s}_started_at' for s in STAGES)} END) < %s GROUP BY stage"
)


def stuck_calls(cutoff: dt.datetime) -> dict[str, int]:
    """Calls not ended whose current stage began before ``cutoff`` (STAGE_DEADLINE ago), per stage."""
    return {str(stage): int(count) for stage, count in _rows(STUCK_SQL, (cutoff,))}
