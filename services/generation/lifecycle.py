"""One fal.ai job's life in its row, for every kind of job (avatar segments, speech-to-text jobs).

A row (``shared.models.Segment`` or ``shared.speech_jobs.SpeechJob``: the same
columns) goes::

    pending ──submit──▶ submitted ──poll…──▶ completed
       ▲                    │ failed / timed out (cancelled at fal)
       └──── attempt ≤ FAL_MAX_RETRIES ◀┘──────────▶ failed

The rules are written once here so both kinds meet fal's answers alike: one
status check per poll message, the same timeouts (``FAL_JOB_TIMEOUT`` once
running, scaled up to an avatar segment's length by :meth:`Work.timeout`;
the queue bounded by ``STAGE_DEADLINE``), the same reading of fal's errors
and the same retries. What differs (the model and its arguments, what
a result becomes, what a failure ends) is a :class:`Work` subclass's.
Every step is a conditional UPDATE on the row's state, so a redelivered
message finds the work done and moves on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, NamedTuple

from shared import events, metrics
from shared.contracts import Contract, send
from shared.errors import PermanentError
from shared.models import SegmentState, Stage, utcnow
from shared.settings import Settings
from shared.storage import Storage

from .fal import TRANSIENT_CODES, FalError, FalQueue, JobStatus

__all__ = [
    "Kind", "Work", "schedule_poll", "claim", "send_job",
    "polled_row", "look", "claim_poll", "follow", "later", "note", "collect", "complete", "cancel", "retry_or_fail", "close",
]

log = logging.getLogger("callreel.generation")


class Kind(NamedTuple):
    """What names a kind of fal job."""

    id_field: str  # the row's id in log records
    job_name: str  # the job in messages
    product: str  # what a finished job gives
    poll: Contract  # the message that brings a row back for its next look


@dataclass
class Work:
    """What one kind of fal job needs and does differently, built once per message."""

    kind: ClassVar[Kind]
    settings: Settings
    storage: Storage
    fal: FalQueue

    def context(self, row: Any) -> dict:
        return row_context(row, self.kind.id_field)

    def poll_interval(self, row: Any) -> float:
        """Seconds until the row's next look (FAL_POLL_INTERVAL unless the kind paces its jobs)."""
        return self.settings.fal_poll_interval

    def schedule_poll(self, row: Any) -> None:
        schedule_poll(row, self.kind, self.settings, self.poll_interval(row))

    def submit(self, row: Any) -> None:
        """Send a pending row's job to fal (or finish it without fal)."""
        raise NotImplementedError

    def progress(self, status: JobStatus) -> str:
        """What the row shows while fal queues or runs the job."""
        raise NotImplementedError

    def timeout(self, row: Any) -> int:
        """Seconds the row's job may run at fal before it is cancelled (FAL_JOB_TIMEOUT unless the kind scales it)."""
        return self.settings.fal_job_timeout

    def keep(self, row: Any, result: Any, expired: bool) -> None:
        """Make the row's product from fal's result (:func:`complete`, or a failed attempt)."""
        raise NotImplementedError

    def fail(self, row: Any, reason: str) -> None:
        """The row fails for good (and whatever it was part of learns so)."""
        raise NotImplementedError


def row_context(row: Any, id_field: str) -> dict:
    return {"call_id": row.call_id, "stage": Stage.GENERATION, "side": row.side, id_field: row.id}


def schedule_poll(row: Any, kind: Kind, settings: Settings, interval: float | None = None) -> None:
    """Bring the row back for its next look after the poll interval (no worker thread waits on fal)."""
    seconds = settings.fal_poll_interval if interval is None else interval
    send(kind.poll, delay_ms=int(seconds * 1000), **{kind.poll.params[0]: row.id})


# -- submitting -----------------------------------------------------------------------------------


def claim(row: Any, extra: dict | None = None) -> bool:
    """Move a pending row to submitted, counting the attempt; False when another delivery got there first."""
    rows, now = type(row), utcnow()
    updates = {
        rows.state: SegmentState.SUBMITTED,
        rows.attempts: rows.attempts + 1,
        rows.submitted_at: now,
        rows.started_at: None,
        rows.fal_request_id: None,
        rows.progress: "submitting",
        rows.updated_at: now,
        **(extra or {}),
    }
    return bool(rows.update(updates).where((rows.id == row.id) & (rows.state == SegmentState.PENDING)).execute())


def send_job(row: Any, work: Work, arguments: dict) -> str | None:
    """Submit a claimed row's job: fal's request id, or None when fal refused it for good (the row failed).

    Transient trouble puts the row back to pending (the attempt not counted) and re-raises the FalError.
    """
    rows = type(row)
    try:
        request_id = work.fal.submit(arguments)
    except FalError as exc:
        if not exc.transient:
            work.fail(row, f"fal.ai refused the {work.kind.job_name} (not retried): {exc}")
            return None
        rows.update(
            {
                rows.state: SegmentState.PENDING,
                rows.attempts: rows.attempts - 1,
                rows.progress: f"waiting to submit again: {exc}"[:1000],
                rows.updated_at: utcnow(),
            }
        ).where((rows.id == row.id) & (rows.state == SegmentState.SUBMITTED) & rows.fal_request_id.is_null()).execute()
        log.warning("%s submit deferred: %s", work.kind.job_name, exc, extra=work.context(row))
        raise
    _record(row, work, events.Kind.FAL_SUBMITTED, request_id=request_id, attempt=row.attempts + 1)
    return request_id


def _record(row: Any, work: Work, kind: str, **detail: Any) -> None:
    """One fal job's step in its call's history (shared/events.py)."""
    events.record(row.call_id, kind, stage=Stage.GENERATION, job=work.kind.job_name, side=row.side, row=row.id, **detail)


# -- polling --------------------------------------------------------------------------------------


def polled_row(rows: Any, row_id: Any, what: str) -> Any | None:
    """The row a poll message names (None when it is gone); a malformed id can never be right."""
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise PermanentError(f"invalid {what} id {row_id!r}")
    return rows.get_or_none(rows.id == row_id)


def look(row: Any, work: Work) -> None:
    """A polled row that passed the gate: submit it again (its submit met transient trouble), or follow its job."""
    if row.state == SegmentState.PENDING:
        work.submit(row)
    else:
        follow(row, work)


def claim_poll(row: Any, settings: Settings, interval: float | None = None) -> bool:
    """Let one poll chain per job through.

    Each poll re-sends itself, so a redelivered poll message would start a
    second chain polling the same job. A poll passes only if the row was
    last touched at least half an interval ago, and touches it: of two chains,
    one always arrives within half an interval of the other and stops.
    ``interval``: the pace the row's chain keeps (FAL_POLL_INTERVAL unless given).
    """
    rows, now = type(row), utcnow()
    half = (settings.fal_poll_interval if interval is None else interval) / 2
    return bool(
        rows.update({rows.updated_at: now})
        .where(
            (rows.id == row.id)
            & rows.state.in_((SegmentState.PENDING, SegmentState.SUBMITTED))
            & (rows.updated_at <= now - timedelta(seconds=half))
        )
        .execute()
    )


def follow(row: Any, work: Work) -> None:
    """One look at a submitted job: wait, collect its result, or time it out (cancel, next attempt).

    A job is timed from when fal starts running it (``FAL_JOB_TIMEOUT``): a
    long call's jobs may wait in fal's queue behind each other, and
    cancelling a job that has not started only loses its place. The wait in
    the queue is bounded too, by ``STAGE_DEADLINE``.
    """
    rows, settings, request_id, now = type(row), work.settings, row.fal_request_id, utcnow()
    waited = (now - row.submitted_at).total_seconds() if row.submitted_at else float("inf")
    queue_limit = max(settings.fal_job_timeout, settings.stage_deadline)
    timeout = work.timeout(row)
    if row.started_at is not None:
        expired = (now - row.started_at).total_seconds() > timeout
        why = f"no {work.kind.product} after {timeout}s of generation"
    else:
        expired = waited > queue_limit
        why = f"not started by fal.ai within {queue_limit}s"
    if request_id is None:  # the submitting worker stopped before fal answered: retried once timed out
        later(row, work, waited > settings.fal_job_timeout, "fal.ai never acknowledged the submission")
        return
    try:
        status = work.fal.status(request_id)
    except FalError as exc:
        if not exc.transient:
            retry_or_fail(row, work, f"fal.ai lost job {request_id}: {exc}")
            return
        log.warning("status of %s unavailable: %s", request_id, exc, extra=work.context(row))
        note(row, f"status unavailable, will ask again: {exc}")
        later(row, work, expired, f"job {request_id}: {why}, status unavailable ({exc})", cancel_first=True)
        return
    if status.done:
        collect(row, work, status, expired)
        return
    if status.state == "running" and row.started_at is None:
        rows.update({rows.started_at: now}).where((rows.id == row.id) & rows.started_at.is_null()).execute()
        expired = False
    if expired:
        cancel(row, work)
        retry_or_fail(row, work, f"job {request_id}: {why}; cancelled")
        return
    text = work.progress(status)[:1000]
    if text != row.progress:  # to the log only when it changes
        log.info("%s", text, extra=work.context(row))
        note(row, text)
    work.schedule_poll(row)


def later(row: Any, work: Work, expired: bool, reason: str, *, cancel_first: bool = False) -> None:
    """Look again after the poll interval, unless the job's time is up: then it is a failed attempt."""
    if not expired:
        work.schedule_poll(row)
        return
    if cancel_first and row.fal_request_id:
        cancel(row, work)
    retry_or_fail(row, work, reason)


def note(row: Any, text: str) -> None:
    rows = type(row)
    rows.update({rows.progress: text[:1000]}).where(rows.id == row.id).execute()


def collect(row: Any, work: Work, status: JobStatus, expired: bool) -> None:
    """The job has ended: hand its result to the kind, or count the failed attempt."""
    request_id = row.fal_request_id
    assert request_id is not None, "collect follows a job fal acknowledged"
    if status.error:
        reason = f"fal.ai {work.kind.job_name} {request_id} failed: {status.error}"
        try:
            work.fal.result(request_id)
            code = None
        except FalError as exc:
            if exc.status_code is None:  # the network, not the job
                later(row, work, expired, reason)
                return
            code, reason = exc.status_code, f"{reason} ({exc})"
        # The model refusing its input (422…) will refuse it again; anything else may pass next time.
        invalid = code is not None and 400 <= code < 500 and code not in TRANSIENT_CODES
        retry_or_fail(row, work, reason, retryable=not invalid)
        return
    try:
        result = work.fal.result(request_id)
    except FalError as exc:
        if exc.status_code is None or exc.status_code in TRANSIENT_CODES:  # the network, or fal asking us to slow down
            later(row, work, expired, f"fal.ai job {request_id}: result unavailable ({exc})")
        elif exc.transient:
            # A 5xx for a job fal calls COMPLETED is the job's own failure, which fal reports only here:
            # fetching it again until FAL_JOB_TIMEOUT would get the same answer.
            retry_or_fail(row, work, f"fal.ai job {request_id} completed without a result: {exc}")
        else:
            work.fail(row, f"fal.ai refused the {work.kind.job_name}'s input (not retried): {exc}")
        return
    work.keep(row, result, expired)


def complete(row: Any, updates: dict, progress: str) -> bool:
    """Store a collected job's product in its row, unless the row moved on meanwhile (closed, or a newer attempt)."""
    rows, now = type(row), utcnow()
    ended = {rows.state: SegmentState.COMPLETED, rows.error: None, rows.progress: progress, rows.finished_at: now, rows.updated_at: now}
    done = bool(
        rows.update({**updates, **ended})
        .where((rows.id == row.id) & (rows.state == SegmentState.SUBMITTED) & (rows.fal_request_id == row.fal_request_id))
        .execute()
    )
    if done:
        events.record(
            row.call_id, events.Kind.FAL_COMPLETED, stage=Stage.GENERATION, side=row.side, row=row.id, request_id=row.fal_request_id
        )
        video = row.seconds if _job_kind(rows) == "avatar" else None
        metrics.fal_job_ended(_job_kind(rows), "completed", video, _list_price(video) if video else None)
    return done


def _list_price(video_seconds: float) -> float | None:
    """What fal bills for a job that made ``video_seconds`` of video, at the configured model's list price."""
    from shared.fal_models import UnknownModel, billed_dollars, model_for
    from shared.settings import get_settings

    try:
        return billed_dollars(model_for(get_settings().fal_model), video_seconds)
    except UnknownModel:
        return None


def _job_kind(rows: Any) -> str:
    """The metrics' name of a kind of job: ``avatar`` (a Segment row) or ``speech``."""
    return "avatar" if rows.__name__ == "Segment" else "speech"


def cancel(row: Any, work: Work) -> None:
    """Ask fal to drop the job (best effort: a job that already ended cannot be cancelled)."""
    if row.fal_request_id is None:  # nothing was submitted: nothing to cancel
        return
    try:
        work.fal.cancel(row.fal_request_id)
        log.info("cancelled fal.ai job %s", row.fal_request_id, extra=work.context(row))
        _record(row, work, events.Kind.FAL_CANCELLED, request_id=row.fal_request_id)
    except FalError as exc:
        log.warning("could not cancel fal.ai job %s: %s", row.fal_request_id, exc, extra=work.context(row))


def retry_or_fail(row: Any, work: Work, reason: str, *, retryable: bool = True) -> None:
    """One attempt failed: submit again while attempts remain, otherwise the row fails."""
    rows, settings = type(row), work.settings
    if not retryable or row.attempts > settings.fal_max_retries:
        work.fail(row, reason if retryable else f"{reason} (not retried)")
        return
    same_job = rows.fal_request_id.is_null() if row.fal_request_id is None else rows.fal_request_id == row.fal_request_id
    reopened = (
        rows.update(
            {
                rows.state: SegmentState.PENDING,
                rows.error: reason[:4000],
                rows.progress: f"attempt {row.attempts} failed, trying again",
                rows.updated_at: utcnow(),
            }
        )
        .where((rows.id == row.id) & (rows.state == SegmentState.SUBMITTED) & same_job)
        .execute()
    )
    if reopened:
        tries = settings.fal_max_retries + 1
        _record(row, work, events.Kind.FAL_FAILED, request_id=row.fal_request_id, attempt=row.attempts, error=reason, retried=True)
        log.warning("%s attempt %d of %d failed: %s", work.kind.job_name, row.attempts, tries, reason, extra=work.context(row))
        work.submit(rows.get_by_id(row.id))


def close(rows: Any, row_id: int, reason: str, *, progress: str = "failed") -> bool:
    """Fail an open row of ``rows`` (Segment or SpeechJob); False when it had already ended."""
    now = utcnow()
    ended = {rows.state: SegmentState.FAILED, rows.error: reason[:4000], rows.progress: progress}
    ended |= {rows.finished_at: now, rows.updated_at: now}
    closed = bool(
        rows.update(ended)
        .where((rows.id == row_id) & rows.state.not_in(SegmentState.TERMINAL))
        .execute()
    )
    if closed:
        metrics.fal_job_ended(_job_kind(rows), "failed")
        row = rows.get_or_none(rows.id == row_id)
        if row is not None:
            kind = events.Kind.FAL_CANCELLED if progress == "cancelled" else events.Kind.FAL_FAILED
            events.record(
                row.call_id, kind, stage=Stage.GENERATION, side=row.side, row=row_id,
                request_id=row.fal_request_id, attempt=row.attempts, error=reason,
            )
    return closed
