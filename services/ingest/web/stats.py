"""The overview's numbers, each one SQL aggregate over ``calls``: nothing loads rows into Python.

PostgreSQL (production) and SQLite (the demo) both answer every query; where
their SQL differs (truncating a time to its hour, a time difference in seconds,
percentiles) the dialect is asked for and the matching expression used.

- :func:`hours_ended`: calls that ended per hour and how (completed, partial,
  failed), with their fal.ai spend: ``fal_cost_usd`` where the generation stage
  recorded it, otherwise the seconds of video fal generated (times
  FAL_USD_PER_SECOND on the page). Closed hours come from a rollup table
  (``shared.overview_store``), the open hour is counted live.
- :func:`in_progress`: calls not ended now.
- :func:`durations`: p50 and p95 of each stage's time and of webhook → video
  (the row's ``created_at``, when the webhook arrived, to the final video),
  nearest-rank (``percentile_disc``): every figure is a duration a real call had;
  over the newest DURATION_SAMPLE calls of the window (all of them when fewer).
- :func:`failure_reasons`: the commonest errors (their first
  :data:`REASON_CHARS` characters) of failed and partial calls, with counts.

Every query is bounded by a window of ``created_at`` or of the end time, so the
indexes the migration adds (shared/migrations.py's console indexes) turn a
million-row table into the window's rows only, and the week's chart reads the
rollup (docs/console.md, "Scale", has the figures and the reasons).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from peewee import Database, PostgresqlDatabase

from shared.calls import REASON_CHARS
from shared.db import database
from shared.models import STAGES, VideoStatus
from shared.overview_store import OverviewHour

__all__ = [
    "OUTCOMES", "REASON_CHARS", "Hour", "Durations", "hours_ended", "in_progress", "durations", "failure_reasons",
    "floor_hour", "is_postgres", "failure_rate", "stuck_calls", "STUCK_SQL",
]

OUTCOMES = ("completed", "partial", "failed")
DURATION_SAMPLE = 5_000
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


@dataclass
class Hour:
    """Call endings of one hour and their fal.ai spend (recorded, and generated seconds without a recorded cost)."""

    completed: int = 0
    partial: int = 0
    failed: int = 0
    fal_cost_usd: float = 0.0
    fal_seconds: float = 0.0

    @property
    def ended(self) -> int:
        return self.completed + self.partial + self.failed


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _count_hours(start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, Hour]:
    """Endings per hour in ``[start, end)``, counted from ``calls`` (an index-only scan of calls_ended_idx)."""
    hour = "date_trunc('hour', video_processing_completed_at)" if is_postgres() else "strftime('%Y-%m-%d %H:00:00', video_processing_completed_at)"
    generated = " + ".join(
        f"CASE WHEN {side}_state = 'generated' THEN COALESCE({side}_duration, 0) ELSE 0 END" for side in ("caller", "callee")
    )
    rows = _rows(
        f"SELECT {hour}, SUM(CASE WHEN video_status = 'completed' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN video_status = 'partial' THEN 1 ELSE 0 END), SUM(CASE WHEN video_status = 'failed' THEN 1 ELSE 0 END), "
        f"SUM(fal_cost_usd), SUM(CASE WHEN fal_cost_usd IS NULL THEN {generated} ELSE 0 END) "
        f"FROM calls WHERE video_processing_completed_at >= %s AND video_processing_completed_at < %s "
        f"AND video_status IN ({_TERMINAL}) GROUP BY 1",
        (start, end),
    )
    found = {}
    for bucket, completed, partial, failed, cost, seconds in rows:
        moment = bucket if isinstance(bucket, dt.datetime) else dt.datetime.fromisoformat(str(bucket))
        found[moment] = Hour(int(completed or 0), int(partial or 0), int(failed or 0), float(cost or 0), float(seconds or 0))
    return found


def hours_ended(first: dt.datetime, now: dt.datetime) -> dict[dt.datetime, Hour]:
    """Endings per hour from the hour ``first`` to now: closed hours from the rollup, the open hour counted live.

    An hour is closed SETTLE after its end (a transaction that ended a call at 13:59:59
    has committed by 14:05). Closed hours missing from the rollup (``shared.overview_store``)
    are counted in one query and stored; two workers doing it at once store the same rows.
    """
    first = floor_hour(first)
    closed = floor_hour(now - SETTLE)  # hours before this one are closed
    stored = {
        row.hour: Hour(row.completed, row.partial, row.failed, row.fal_cost_usd, row.fal_seconds)
        for row in OverviewHour.select().where((OverviewHour.hour >= first) & (OverviewHour.hour < closed))
    }
    wanted, moment = [], first
    while moment < closed:
        if moment not in stored:
            wanted.append(moment)
        moment += dt.timedelta(hours=1)
    if wanted:
        counted = _count_hours(wanted[0], wanted[-1] + dt.timedelta(hours=1))
        rows = []
        for moment in wanted:
            hour = stored[moment] = counted.get(moment, Hour())
            rows.append({"hour": moment, **vars(hour), "computed_at": now})
        with database.atomic():
            for batch in range(0, len(rows), 200):
                OverviewHour.insert_many(rows[batch:batch + 200]).on_conflict_ignore().execute()
    stored.update(_count_hours(max(first, closed), now + dt.timedelta(hours=1)))
    return stored


def in_progress() -> int:
    """Calls not ended now (the in-flight partial index answers it)."""
    ((count,),) = _rows(f"SELECT COUNT(*) FROM calls WHERE video_status IS NULL OR video_status NOT IN ({_TERMINAL})", ())
    return int(count)


@dataclass(frozen=True)
class Durations:
    """Seconds at p50 and p95 (None: no call in the window has that time), and how many calls each is over."""

    name: str
    count: int
    p50: float | None
    p95: float | None


def _duration_columns() -> list[tuple[str, str]]:
    columns = [(stage, _seconds(f"{stage}_started_at", f"{stage}_finished_at")) for stage in STAGES]
    # Webhook → video: only for calls that have a video (a failed call's end is not a video).
    webhook = _seconds("created_at", "video_processing_completed_at")
    columns.append(("webhook → video", f"CASE WHEN video_status IN ('completed', 'partial') THEN {webhook} END"))
    return columns


def durations(since: dt.datetime, sample: int = DURATION_SAMPLE) -> list[Durations]:
    """p50/p95 of each stage's seconds and of webhook → video, over the newest ``sample`` calls created since ``since``.

    Five sorts of every call of a week (230 000 of them at a million calls a month) took
    seconds; the newest DURATION_SAMPLE calls of the window, read in the list's index order,
    give the same percentiles to a fraction of a percent, and every call when fewer.
    """
    columns = _duration_columns()
    if is_postgres():
        selects = ", ".join(
            f"COUNT({expr}), percentile_disc(0.5) WITHIN GROUP (ORDER BY {expr}), "
            f"percentile_disc(0.95) WITHIN GROUP (ORDER BY {expr})"
            for _, expr in columns
        )
        newest = f"(SELECT * FROM calls WHERE created_at >= %s ORDER BY created_at DESC NULLS LAST, id DESC LIMIT {int(sample)}) AS calls"
        (row,) = _rows(f"SELECT {selects} FROM {newest}", (since,))
        return [
            Durations(name, int(row[3 * i]), _float(row[3 * i + 1]), _float(row[3 * i + 2]))
            for i, (name, _) in enumerate(columns)
        ]
    # SQLite has no percentile function: count, then read the value at each nearest rank.
    found = []
    for name, expr in columns:
        newest = f"(SELECT * FROM calls WHERE created_at >= ? ORDER BY created_at DESC, id DESC LIMIT {int(sample)})"
        inner = f"SELECT {expr} AS d FROM {newest} WHERE {expr} IS NOT NULL"
        ((count,),) = _rows(f"SELECT COUNT(*) FROM ({inner})", (since,))
        values = []
        for fraction in (0.5, 0.95):
            if not count:
                values.append(None)
                continue
            rank = max(1, -(-int(fraction * count * 1000) // 1000))  # ceil(fraction × n), without float surprises
            ((value,),) = _rows(f"{inner} ORDER BY d LIMIT 1 OFFSET ?", (since, rank - 1))
            values.append(_float(value))
        found.append(Durations(name, int(count), values[0], values[1]))
    return found


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def failure_reasons(since: dt.datetime, limit: int = 8) -> list[tuple[str, int]]:
    """The commonest error messages (first REASON_CHARS characters) of failed and partial calls created since ``since``."""
    rows = _rows(
        f"SELECT SUBSTR(video_error_message, 1, {REASON_CHARS}) AS reason, COUNT(*) AS n FROM calls "
        "WHERE created_at >= %s AND video_status IN ('failed', 'partial') AND video_error_message IS NOT NULL "
        "GROUP BY 1 ORDER BY n DESC, reason LIMIT %s",
        (since, limit),
    )
    return [(str(reason), int(count)) for reason, count in rows]


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
