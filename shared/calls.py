"""Read-only views of calls: the newest-first listing, a call's stage timeline and its segments.

``callreel status``/``callreel list`` and the ingest service's status API and
operator page all read calls through here, so a person sees the same
timeline wherever they look.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from peewee import SQL, NodeList, fn

from .models import STAGES, Call, Segment, VideoStatus, utcnow

# A failure reason is the first this many characters of a call's error (the overview groups by it).
REASON_CHARS = 100

__all__ = ["REASON_CHARS", "ListPosition", "newest_calls", "stage_timeline", "call_segments", "processing_seconds", "calls_per_stage"]


@dataclass(frozen=True)
class ListPosition:
    """Where a page of :func:`newest_calls` ended: the last row's ``created_at`` and ``id``."""

    created_at: dt.datetime | None
    id: str

    @classmethod
    def of(cls, call: Call) -> ListPosition:
        return cls(call.created_at, call.id)


def newest_calls(
    *,
    status: str | None = None,
    stage: str | None = None,
    search: str | None = None,
    reason: str | None = None,
    limit: int = 50,
    after: ListPosition | None = None,
) -> list[Call]:
    """Calls newest first, ordered by (created_at, id), starting after ``after``.

    Keyset pagination: a page is as cheap deep in the table as at its top, and
    calls arriving meanwhile never shift or repeat rows. Rows without a
    ``created_at`` (made by the host application) come last, ordered by id.
    ``search`` is a prefix of the call id or of the recording SID; callers
    validate it (it must not hold LIKE wildcards). ``reason`` is the first
    :data:`REASON_CHARS` characters of the error of failed and partial calls
    (the overview's failure reasons link here with it).
    """
    query = Call.select().order_by(Call.created_at.desc(nulls="LAST"), Call.id.desc())
    if status:
        query = query.where(Call.video_status == status)
    if stage:
        query = query.where(Call.stage == stage)
    if search:
        # LIKE, not peewee's startswith (ILIKE on PostgreSQL, which no index serves): the prefix is
        # already in the SIDs' case, and the migration's pattern indexes answer it (#28).
        query = query.where(_like(Call.id, f"{search}%") | _like(Call.recording_sid, f"{search}%"))
    if reason:
        query = query.where(
            Call.video_status.in_((VideoStatus.FAILED, VideoStatus.PARTIAL))
            & (fn.SUBSTR(Call.video_error_message, 1, REASON_CHARS) == reason)
        )
    if after is not None:
        if after.created_at is None:
            query = query.where(Call.created_at.is_null() & (Call.id < after.id))
        else:
            query = query.where(
                (Call.created_at < after.created_at)
                | ((Call.created_at == after.created_at) & (Call.id < after.id))
                | Call.created_at.is_null()
            )
    return list(query.limit(max(1, limit)))


def _like(column: Any, pattern: str) -> Any:
    """``column LIKE pattern`` as SQL says it (peewee turns its LIKE into GLOB on SQLite)."""
    return NodeList((column, SQL("LIKE"), pattern))


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end and end >= start else None


def _stage_state(call: Call, stage: str, started: dt.datetime | None, finished: dt.datetime | None) -> str:
    if finished:
        return "done"
    ended = call.video_status in VideoStatus.TERMINAL
    if started and not ended and call.stage == stage:
        return "running"
    if started and ended:
        return "failed" if call.video_status == VideoStatus.FAILED else "unfinished"
    return "skipped" if ended else "waiting"


def stage_timeline(call: Call) -> list[dict[str, Any]]:
    """Each stage in pipeline order: start, finish, seconds, attempts and where it stands.

    ``state`` is ``done``, ``running``, ``waiting``, ``failed`` (the call
    failed with this stage unfinished), ``unfinished`` (a partial call) or
    ``skipped`` (the call ended before it). Times are naive UTC.
    """
    timeline = []
    for stage in STAGES:
        started, finished = getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at")
        timeline.append(
            {
                "stage": stage,
                "state": _stage_state(call, stage, started, finished),
                "started_at": started,
                "finished_at": finished,
                "seconds": _seconds(started, finished),
                "attempts": getattr(call, f"{stage}_attempts") or 0,
            }
        )
    return timeline


def call_segments(call_id: str) -> list[dict[str, Any]]:
    """The fal.ai segments of a call, by side and index, with their request ids and attempts."""
    query = Segment.select().where(Segment.call_id == call_id).order_by(Segment.side, Segment.index)
    return [
        {
            "side": s.side,
            "index": s.index,
            "start": s.start,
            "end": s.end,
            "pieces": s.pieces,
            "state": s.state,
            "fal_request_id": s.fal_request_id,
            "attempts": s.attempts,
            "error": s.error,
            "progress": s.progress,
            "video_key": s.video_key,
            "submitted_at": s.submitted_at,
            "finished_at": s.finished_at,
        }
        for s in query
    ]


def processing_seconds(call: Call, now: dt.datetime | None = None) -> float | None:
    """Total processing time: as recorded once the call ended, else the time so far."""
    if call.video_processing_duration is not None and call.video_status in VideoStatus.TERMINAL:
        return float(call.video_processing_duration)
    started = call.video_processing_started_at
    if started is None:
        return None
    end = call.video_processing_completed_at or (None if call.video_status in VideoStatus.TERMINAL else now or utcnow())
    return _seconds(started, end)


def calls_per_stage() -> dict[str, int]:
    """Calls still being worked on, per stage (the backlog as the database sees it)."""
    in_flight = Call.video_status.not_in(VideoStatus.TERMINAL) | Call.video_status.is_null()
    # peewee's stubs type .tuples() as yielding models; it yields (stage, count) tuples.
    rows = cast("Iterable[tuple[str, int]]", Call.select(Call.stage, fn.COUNT(Call.id)).where(in_flight).group_by(Call.stage).tuples())
    counts = {stage: 0 for stage in STAGES}
    for stage, count in rows:
        if stage in counts:
            counts[stage] = count
    return counts
