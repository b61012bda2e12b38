"""A call's progress through the stages, written to its row with atomic updates.

Every actor follows the same shape, which is what makes redelivery harmless
(``shared.skeleton.run`` is that shape, written once)::

    call = progress.begin(call_id, Stage.AUDIO)     # None: nothing to do
    if call is None: return
    ... work, skipped where the row says it is already done ...
    progress.finish(call_id, Stage.AUDIO, **columns)  # work recorded
    pipeline.start(Stage.GENERATION, call_id)        # hand on
    progress.advance(call_id, Stage.AUDIO, Stage.GENERATION)

A redelivered message for a stage the call has moved past is skipped by
``begin``; one that arrives between ``finish`` and ``advance`` (a worker killed
in that gap) only hands on again, and the next stage is idempotent too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from peewee import fn

from . import events, metrics
from .contracts import CANCEL_JOBS, send
from .models import Call, Segment, SegmentState, Stage, VideoStatus, utcnow
from .pipeline import STAGES
from .pipeline import order as stage_order
from .speech_jobs import SpeechJob

__all__ = ["begin", "finish", "advance", "fail_call", "timed", "stage_order"]

log = logging.getLogger("callreel.progress")


def begin(call_id: str, stage: str) -> Call | None:
    """Mark ``stage`` as started (one more attempt) and return the call, or None to skip.

    Skipped: unknown calls, calls that ended, and calls already past ``stage``.
    """
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        log.warning("no such call", extra={"call_id": call_id, "stage": stage})
        return None
    if call.video_status in VideoStatus.TERMINAL and not call.rerender or stage_order(call.stage) > stage_order(stage):
        log.info("skipped: call is at %s (%s)", call.stage, call.video_status, extra={"call_id": call_id, "stage": stage})
        return None
    now = utcnow()
    attempts = getattr(Call, f"{stage}_attempts")
    updates = {
        Call.stage: stage,
        attempts: fn.COALESCE(attempts, 0) + 1,
        getattr(Call, f"{stage}_started_at"): now,
        Call.video_processing_started_at: fn.COALESCE(Call.video_processing_started_at, now),
        Call.updated_at: now,
    }
    # The stage is checked again in the UPDATE: another worker may have moved the
    # call on since it was read (generation's fan-in advancing it to the
    # compositor while the other side's message begins), and begin must not
    # move it back.
    not_past = [s for s in STAGES if stage_order(s) <= stage_order(stage)]
    if not Call.update(updates).where((Call.id == call_id) & (Call.stage.in_(not_past) | Call.stage.is_null())).execute():
        log.info("skipped: call moved past %s meanwhile", stage, extra={"call_id": call_id, "stage": stage})
        return None
    begun = Call.get_by_id(call_id)
    events.record(call_id, events.Kind.STAGE_BEGUN, stage=stage, attempt=getattr(begun, f"{stage}_attempts"))
    return begun


def finish(call_id: str, stage: str, /, **columns: Any) -> None:
    """Record that ``stage``'s work is done, with the columns it produced.

    (Positional ``call_id`` and ``stage``: the compositor's columns end the call, ``stage="done"`` among them.)
    """
    now = utcnow()
    updates = {getattr(Call, name): value for name, value in columns.items()}
    updates[getattr(Call, f"{stage}_finished_at")] = now
    updates[Call.updated_at] = now
    Call.update(updates).where(Call.id == call_id).execute()
    events.record(call_id, events.Kind.STAGE_FINISHED, stage=stage, status=columns.get("video_status"))
    _measure(call_id, stage, now, columns.get("video_status"))


def _measure(call_id: str, stage: str, now: Any, video_status: str | None) -> None:
    """Metrics of a finished stage: its duration from the row's start, and the call's end."""
    try:
        started = Call.select(getattr(Call, f"{stage}_started_at")).where(Call.id == call_id).scalar()
    except Exception:  # bookkeeping never fails the work it describes
        log.warning("stage duration not measured", exc_info=True, extra={"call_id": call_id, "stage": stage})
        started = None
    metrics.stage_finished(stage, (now - started).total_seconds() if isinstance(started, type(now)) else None)
    if video_status in VideoStatus.TERMINAL:
        metrics.call_ended(video_status)


def advance(call_id: str, stage: str, next_stage: str) -> None:
    """Move the call on, only if it is still at ``stage`` (never backwards)."""
    Call.update({Call.stage: next_stage, Call.updated_at: utcnow()}).where(
        (Call.id == call_id) & (Call.stage == stage)
    ).execute()


def fail_call(call_id: str, reason: str, *, status: str = VideoStatus.FAILED) -> bool:
    """End the call as ``failed`` (or ``partial``) with ``reason``; False if it had already ended."""
    now = utcnow()
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        return False
    started = call.video_processing_started_at or call.created_at or now
    updated = (
        Call.update(
            {
                Call.video_status: status,
                Call.video_error_message: reason[:4000],
                Call.stage: Stage.DONE,
                Call.rerender: False,
                Call.video_processing_completed_at: now,
                Call.video_processing_duration: int((now - started).total_seconds()),
                Call.updated_at: now,
            }
        )
        .where((Call.id == call_id) & ((Call.video_status.not_in(VideoStatus.TERMINAL)) | (Call.video_status.is_null())))
        .execute()
    )
    if updated:
        log.warning("call %s: %s", status, reason, extra={"call_id": call_id, "stage": call.stage})
        metrics.call_failed(call.stage, status)
        events.record(call_id, events.Kind.CALL_FAILED, stage=call.stage, status=status, error=reason)
        _cancel_jobs(call_id)
    return bool(updated)


def _cancel_jobs(call_id: str) -> None:
    """Jobs still at fal.ai would be paid for and never used: the generation service cancels them.

    Sent, not done here: shared/ cannot import a service, and only the
    generation service talks to fal. Best effort: if the message is lost, each
    job's next poll finds the call ended and cancels it.
    """
    try:
        videos = Segment.select().where((Segment.call_id == call_id) & (Segment.state == SegmentState.SUBMITTED))
        words = SpeechJob.select().where((SpeechJob.call_id == call_id) & (SpeechJob.state == SegmentState.SUBMITTED))
        if videos.exists() or words.exists():
            send(CANCEL_JOBS, call_id=call_id)
    except Exception:  # the call has ended either way; this only saves money
        log.warning("could not ask for the call's fal.ai jobs to be cancelled", exc_info=True, extra={"call_id": call_id})


@contextmanager
def timed(call_id: str, stage: str, what: str) -> Iterator[None]:
    """Log one line when ``what`` ends, with its duration (and the error, if any)."""
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        log.warning(
            "%s failed after %.2fs: %s", what, time.monotonic() - started, exc,
            extra={"call_id": call_id, "stage": stage, "duration": round(time.monotonic() - started, 3)},
        )
        raise
    log.info(
        "%s done in %.2fs", what, time.monotonic() - started,
        extra={"call_id": call_id, "stage": stage, "duration": round(time.monotonic() - started, 3)},
    )
