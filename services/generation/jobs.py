"""The generation stage: each side's segments become fal.ai jobs, each job is polled, each video is stored.

``generate`` (once ``stage.generate_side`` has begun the stage) submits
every pending segment of one side (or marks the side LOCAL without a fal key,
or leaves a SILENT side alone) and returns; each submitted job is then
followed by ``poll_segment`` messages that the broker brings back after
``FAL_POLL_INTERVAL`` seconds, so no worker thread waits on fal. A
segment's life, all in its row::

    pending ──submit──▶ submitted ──poll…──▶ completed (video in the store)
       ▲                    │ failed / timed out (cancelled at fal)
       └──── attempt ≤ FAL_MAX_RETRIES ◀┘──────────▶ failed (side FAILED)

Every step is a conditional UPDATE on the segment's state, so a redelivered
message (RabbitMQ delivers at least once) finds the work done and moves on.
When a side's last segment ends, :mod:`.fanin` ends the side and, when both
sides have ended, enqueues the compose job exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from peewee import fn

from shared import keys, pipeline
from shared.contracts import POLL_SEGMENT, send
from shared.errors import PermanentError, TransientError
from shared.fal_models import FalModel, model_for
from shared.models import SIDES, Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from shared.presentation import presentation_for
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, Storage, get_storage

from .avatars import Avatar, avatar_for
from .cache import audio_digest, cache_key, copy_video, find_cached
from .fal import TRANSIENT_CODES, FalError, FalQueue, JobStatus, fal_queue
from .fanin import fan_in, mark_side, settle_side
from .inputs import InputTooLarge, input_url
from .videos import BadVideo, store_video

__all__ = [
    "generate", "poll_segment", "give_up_side", "give_up_segment", "cancel_unusable", "close_and_cancel", "cancel_at_fal", "url_expiry",
]

log = logging.getLogger("callreel.generation")

MAX_PRESIGN = 7 * 24 * 3600  # S3's longest presigned URL
EXPIRY_MARGIN = 600  # clock skew, and a runner fetching its inputs a little late


def url_expiry(settings: Settings) -> int:
    """Presigned URLs fal fetches outlive the job: its longest wait in fal's queue plus its timeout.

    (Or PRESIGNED_URL_EXPIRY, if that is longer; never more than S3 allows.)
    """
    lifetime = max(settings.fal_job_timeout, settings.stage_deadline) + settings.fal_job_timeout + EXPIRY_MARGIN
    return min(MAX_PRESIGN, max(settings.presigned_url_expiry, lifetime))


@dataclass
class Job:
    """What submitting and polling one side's segments needs, built once per message."""

    settings: Settings
    storage: Storage
    model: FalModel
    fal: FalQueue
    side: str
    tmp: Path
    avatar_reference: str | None = None  # the call's (shared.presentation); None: the deployment's setting
    _avatar: Avatar | None = field(default=None, init=False)

    @classmethod
    def for_side(cls, side: str, settings: Settings, tmp: Path, *, avatar: str | None = None) -> Job:
        model = model_for(settings.fal_model)
        return cls(settings, get_storage(), model, fal_queue(settings.fal_key, model.endpoint), side, tmp, avatar)

    @property
    def avatar(self) -> Avatar:
        if self._avatar is None:
            self._avatar = avatar_for(
                self.side, self.settings, self.storage, expires=url_expiry(self.settings), reference=self.avatar_reference, workdir=self.tmp
            )
        return self._avatar

    def context(self, segment: Segment) -> dict:
        return {"call_id": segment.call_id, "stage": Stage.GENERATION, "side": segment.side, "segment_id": segment.id}


# -- generate_side (begun by services/generation/stage.py) ---------------------------------------


def generate(call: Call, side: str) -> None:
    """Submit the side's pending segments (the call has begun the stage); fal.ai being busy raises TransientError.

    A side with nothing to submit ends here, and the fan-in runs (again, on a
    redelivery: it hands the call on only once).
    """
    call_id, settings = call.id, get_settings()
    if call.side_state(side) in SideState.TERMINAL:  # SILENT, or this side ended on an earlier delivery
        fan_in(call_id)
        return
    if not settings.uses_fal:
        mark_side(call_id, side, SideState.LOCAL)
        fan_in(call_id)
        return
    segments = list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == side)).order_by(Segment.index))
    if not segments:
        error = "no segments to generate: the audio stage cut none (is FAL_KEY set for the audio service too?)"
        mark_side(call_id, side, SideState.FAILED, error=error)
        fan_in(call_id)
        return
    side_state = getattr(Call, f"{side}_state")
    Call.update({side_state: SideState.GENERATING, Call.updated_at: utcnow()}).where(
        (Call.id == call_id) & (side_state == SideState.PENDING)
    ).execute()
    waiting = []
    with pipeline.temp_folder(Stage.GENERATION, call_id, settings.tmp_dir) as tmp:
        job = Job.for_side(side, settings, tmp, avatar=presentation_for(call, settings).avatar(side))
        for listed in segments:
            segment = Segment.get_by_id(listed.id)  # an earlier one failing for good may have ended the rest of the side
            if segment.state == SegmentState.PENDING:
                try:
                    submit(segment, job)
                except FalError as exc:  # only transient ones get here
                    waiting.append(f"segment {segment.index}: {exc}")
            elif segment.state == SegmentState.SUBMITTED:
                # A redelivery: make sure the job is followed (a duplicate poll stops at the gate).
                schedule_poll(segment, settings)
    settle_side(call_id, side)  # every segment may have come from the cache
    if waiting:
        raise TransientError(f"{len(waiting)} segment(s) wait to be submitted again: {'; '.join(waiting)[:1000]}")


def submit(segment: Segment, job: Job) -> None:
    """Send one pending segment to fal.ai, or reuse an identical earlier video. Transient trouble raises FalError."""
    ctx = job.context(segment)
    if not segment.audio_key:
        fail_segment(segment, "the segment has no audio")
        return
    try:
        sha = audio_digest(job.storage, segment.audio_key, job.tmp)
    except ObjectNotFound:
        fail_segment(segment, f"the segment's audio {segment.audio_key} is missing from the store")
        return
    seconds = segment.end - segment.start
    try:
        avatar = job.avatar
    except InputTooLarge as exc:
        fail_segment(segment, str(exc))
        return
    key = cache_key(sha, job.model, avatar, job.settings.fal_prompt, seconds)
    if reuse(segment, key, job):
        return
    now = utcnow()
    claimed = (
        Segment.update(
            {
                Segment.state: SegmentState.SUBMITTED,
                Segment.attempts: Segment.attempts + 1,
                Segment.submitted_at: now,
                Segment.started_at: None,
                Segment.fal_request_id: None,
                Segment.cache_key: key,
                Segment.progress: "submitting",
                Segment.updated_at: now,
            }
        )
        .where((Segment.id == segment.id) & (Segment.state == SegmentState.PENDING))
        .execute()
    )
    if not claimed:  # another delivery got here first
        return
    try:
        audio_url = input_url(job.storage, segment.audio_key, "audio/mpeg", job.settings, job.tmp, expires=url_expiry(job.settings))
    except InputTooLarge as exc:
        fail_segment(segment, str(exc))
        return
    arguments = job.model.build_input(avatar.url, audio_url, job.settings.fal_prompt, seconds)
    try:
        request_id = job.fal.submit(arguments)
    except FalError as exc:
        if exc.transient:
            Segment.update(
                {
                    Segment.state: SegmentState.PENDING,
                    Segment.attempts: Segment.attempts - 1,
                    Segment.progress: f"waiting to submit again: {exc}"[:1000],
                    Segment.updated_at: utcnow(),
                }
            ).where((Segment.id == segment.id) & (Segment.state == SegmentState.SUBMITTED) & Segment.fal_request_id.is_null()).execute()
            log.warning("submit deferred: %s", exc, extra=ctx)
            raise
        fail_segment(segment, f"fal.ai refused the job (not retried): {exc}")
        return
    record_submission(segment, request_id)
    log.info("submitted %.1f-%.1fs to %s as %s", segment.start, segment.end, job.model.endpoint, request_id, extra=ctx)
    schedule_poll(segment, job.settings)


def reuse(segment: Segment, key: str, job: Job) -> bool:
    """Complete the segment with an earlier identical video; False when there is none."""
    earlier = find_cached(key, exclude_id=segment.id)
    if earlier is None or earlier.video_key is None:
        return False
    target = keys.segment_video_key(segment.call_id, segment.side, segment.index)
    if not copy_video(earlier.video_key, target, job.storage, job.tmp):
        return False
    now = utcnow()
    done = (
        Segment.update(
            {
                Segment.state: SegmentState.COMPLETED,
                Segment.video_key: target,
                Segment.cache_key: key,
                Segment.error: None,
                Segment.progress: f"reused the video of segment {earlier.id} (call {earlier.call_id}): nothing sent to fal.ai",
                Segment.finished_at: now,
                Segment.updated_at: now,
            }
        )
        .where((Segment.id == segment.id) & (Segment.state == SegmentState.PENDING))
        .execute()
    )
    if done:
        log.info("cache hit: reused segment %s's video", earlier.id, extra=job.context(segment))
    return True


def record_submission(segment: Segment, request_id: str) -> None:
    """The request id, at once: on the segment, in the call's comma list, and the call is now generating."""
    now = utcnow()
    Segment.update({Segment.fal_request_id: request_id, Segment.progress: "submitted", Segment.updated_at: now}).where(
        Segment.id == segment.id
    ).execute()
    Call.update(
        {Call.fal_job_id: fn.COALESCE(Call.fal_job_id.concat(","), "").concat(request_id), Call.updated_at: now}
    ).where(Call.id == segment.call_id).execute()
    Call.update({Call.video_status: VideoStatus.GENERATING}).where(
        (Call.id == segment.call_id) & ((Call.video_status == VideoStatus.PENDING) | Call.video_status.is_null())
    ).execute()
    if Segment.get_by_id(segment.id).state != SegmentState.SUBMITTED:
        # The side fell back (or the call ended) while fal was answering: nobody will collect this job.
        cancel_at_fal(request_id, get_settings(), _context(segment))


def schedule_poll(segment: Segment, settings: Settings, *, delay: float | None = None) -> None:
    send(POLL_SEGMENT, segment_id=segment.id, delay_ms=int((delay or settings.fal_poll_interval) * 1000))


# -- poll_segment ---------------------------------------------------------------------------------


def poll_segment(segment_id: int) -> None:
    if not isinstance(segment_id, int) or isinstance(segment_id, bool):
        raise PermanentError(f"invalid segment id {segment_id!r}")
    segment = Segment.get_or_none(Segment.id == segment_id)
    if segment is None:
        return
    if segment.state in SegmentState.TERMINAL:
        # Most likely a redelivery of the poll that ended this segment, whose
        # worker may have died between storing the segment and ending its side.
        # Settling again finishes that; done twice it changes nothing.
        settle_side(segment.call_id, segment.side)
        return
    settings = get_settings()
    call = Call.get_or_none(Call.id == segment.call_id)
    if call is None or not settings.uses_fal or _call_moved_on(call):
        abandon(segment, settings, "the call ended before this segment's video was made")
        return
    if not claim_poll(segment, settings):
        return  # a duplicate poll of the same job (a redelivered message): the other one carries on
    segment = Segment.get_by_id(segment_id)
    with pipeline.temp_folder(Stage.GENERATION, segment.call_id, settings.tmp_dir) as tmp:
        job = Job.for_side(segment.side, settings, tmp)
        if segment.state == SegmentState.PENDING:  # a new attempt is due (its submit met transient trouble)
            submit(segment, job)
            return
        follow(segment, job)


def _call_moved_on(call: Call) -> bool:
    ended = call.video_status in VideoStatus.TERMINAL and not call.rerender
    return ended or pipeline.order(call.stage) > pipeline.order(Stage.GENERATION)


def claim_poll(segment: Segment, settings: Settings) -> bool:
    """Let one poll chain per job through.

    Each poll re-sends itself, so a redelivered poll message would start a
    second chain polling the same job. A poll passes only if the segment was
    last touched at least half an interval ago, and touches it: of two chains,
    one always arrives within half an interval of the other and stops.
    """
    now = utcnow()
    return bool(
        Segment.update({Segment.updated_at: now})
        .where(
            (Segment.id == segment.id)
            & Segment.state.in_((SegmentState.PENDING, SegmentState.SUBMITTED))
            & (Segment.updated_at <= now - timedelta(seconds=settings.fal_poll_interval / 2))
        )
        .execute()
    )


def follow(segment: Segment, job: Job) -> None:
    """One look at a submitted job: wait, collect its video, or time it out (cancel, next attempt).

    A job is timed from when fal starts running it (``FAL_JOB_TIMEOUT``): a
    long call's segments may wait in fal's queue behind each other, and
    cancelling a job that has not started only loses its place. The wait in
    the queue is bounded too, by ``STAGE_DEADLINE``.
    """
    settings, ctx = job.settings, job.context(segment)
    request_id = segment.fal_request_id
    now = utcnow()
    waited = (now - segment.submitted_at).total_seconds() if segment.submitted_at else float("inf")
    queue_limit = max(settings.fal_job_timeout, settings.stage_deadline)
    if segment.started_at is not None:
        expired = (now - segment.started_at).total_seconds() > settings.fal_job_timeout
        why = f"no video after {settings.fal_job_timeout}s of generation"
    else:
        expired = waited > queue_limit
        why = f"not started by fal.ai within {queue_limit}s"
    if request_id is None:  # the submitting worker stopped before fal answered: retried once timed out
        later(segment, job, waited > settings.fal_job_timeout, "fal.ai never acknowledged the submission")
        return
    try:
        status = job.fal.status(request_id)
    except FalError as exc:
        if not exc.transient:
            retry_or_fail(segment, job, f"fal.ai lost job {request_id}: {exc}")
            return
        log.warning("status of %s unavailable: %s", request_id, exc, extra=ctx)
        note(segment, f"status unavailable, will ask again: {exc}")
        later(segment, job, expired, f"job {request_id}: {why}, status unavailable ({exc})", cancel_first=True)
        return
    if status.done:
        collect(segment, job, status, expired)
        return
    if status.state == "running" and segment.started_at is None:
        Segment.update({Segment.started_at: now}).where((Segment.id == segment.id) & Segment.started_at.is_null()).execute()
        expired = False
    if expired:
        cancel(segment, job)
        retry_or_fail(segment, job, f"job {request_id}: {why}; cancelled")
        return
    report(segment, status, ctx)
    schedule_poll(segment, settings)


def later(segment: Segment, job: Job, expired: bool, reason: str, *, cancel_first: bool = False) -> None:
    """Look again after the poll interval, unless the job's time is up: then it is a failed attempt."""
    if not expired:
        schedule_poll(segment, job.settings)
        return
    if cancel_first and segment.fal_request_id:
        cancel(segment, job)
    retry_or_fail(segment, job, reason)


def report(segment: Segment, status: JobStatus, ctx: dict) -> None:
    """Queue position or the job's latest log line: to the segment's row, and to the log when it changes."""
    if status.state == "queued":
        text = f"queued at fal.ai (queue position {status.position})"
    else:
        text = f"generating: {status.logs[-1]}" if status.logs else "generating"
    text = text[:1000]
    if text != segment.progress:
        log.info("%s", text, extra=ctx)
        note(segment, text)


def note(segment: Segment, text: str) -> None:
    Segment.update({Segment.progress: text[:1000]}).where(Segment.id == segment.id).execute()


def collect(segment: Segment, job: Job, status: JobStatus, expired: bool) -> None:
    """The job has ended: store its video, or count the failed attempt."""
    ctx, request_id = job.context(segment), segment.fal_request_id
    assert request_id is not None, "collect follows a job fal acknowledged"
    if status.error:
        reason = f"fal.ai job {request_id} failed: {status.error}"
        try:
            job.fal.result(request_id)
            code = None
        except FalError as exc:
            if exc.status_code is None:  # the network, not the job
                later(segment, job, expired, reason)
                return
            code = exc.status_code
            reason = f"{reason} ({exc})"
        # The model refusing its input (422…) will refuse it again; anything else may pass next time.
        invalid = code is not None and 400 <= code < 500 and code not in TRANSIENT_CODES
        retry_or_fail(segment, job, reason, retryable=not invalid)
        return
    try:
        result = job.fal.result(request_id)
    except FalError as exc:
        if exc.status_code is None or exc.status_code in TRANSIENT_CODES:  # the network, or fal asking us to slow down
            later(segment, job, expired, f"fal.ai job {request_id}: result unavailable ({exc})")
        elif exc.transient:
            # A 5xx for a job fal calls COMPLETED is the job's own failure, which fal reports only here:
            # fetching it again until FAL_JOB_TIMEOUT would get the same answer.
            retry_or_fail(segment, job, f"fal.ai job {request_id} completed without a result: {exc}")
        else:
            fail_segment(segment, f"fal.ai refused the job's input (not retried): {exc}")
        return
    try:
        url = job.model.read_video_url(result)
    except (KeyError, TypeError, IndexError):
        retry_or_fail(segment, job, f"fal.ai job {request_id} returned no video URL: {str(result)[:300]}")
        return
    key = keys.segment_video_key(segment.call_id, segment.side, segment.index)
    try:
        size = store_video(url, key, job.storage, job.tmp)
    except BadVideo as exc:
        retry_or_fail(segment, job, f"fal.ai job {request_id} gave an unusable video: {exc}")
        return
    except httpx.HTTPError as exc:  # fal's file host is busy: the URL stays valid for a while
        log.warning("video download failed, will retry: %s", exc, extra=ctx)
        later(segment, job, expired, f"fal.ai job {request_id}: video download kept failing ({exc})")
        return
    now = utcnow()
    done = (
        Segment.update(
            {
                Segment.state: SegmentState.COMPLETED,
                Segment.video_key: key,
                Segment.error: None,
                Segment.progress: f"completed: {size} bytes stored",
                Segment.finished_at: now,
                Segment.updated_at: now,
            }
        )
        .where((Segment.id == segment.id) & (Segment.state == SegmentState.SUBMITTED) & (Segment.fal_request_id == request_id))
        .execute()
    )
    if done:
        log.info("video stored as %s (%d bytes)", key, size, extra=ctx)
        settle_side(segment.call_id, segment.side)


def cancel(segment: Segment, job: Job) -> None:
    """Ask fal to drop the job (best effort: a job that already ended cannot be cancelled)."""
    if segment.fal_request_id is None:  # nothing was submitted: nothing to cancel
        return
    try:
        job.fal.cancel(segment.fal_request_id)
        log.info("cancelled fal.ai job %s", segment.fal_request_id, extra=job.context(segment))
    except FalError as exc:
        log.warning("could not cancel fal.ai job %s: %s", segment.fal_request_id, exc, extra=job.context(segment))


def retry_or_fail(segment: Segment, job: Job, reason: str, *, retryable: bool = True) -> None:
    """One attempt failed: submit again while attempts remain, otherwise the segment fails."""
    ctx = job.context(segment)
    if not retryable or segment.attempts > job.settings.fal_max_retries:
        fail_segment(segment, reason if retryable else f"{reason} (not retried)")
        return
    same_job = Segment.fal_request_id.is_null() if segment.fal_request_id is None else Segment.fal_request_id == segment.fal_request_id
    reopened = (
        Segment.update(
            {
                Segment.state: SegmentState.PENDING,
                Segment.error: reason[:4000],
                Segment.progress: f"attempt {segment.attempts} failed, trying again",
                Segment.updated_at: utcnow(),
            }
        )
        .where((Segment.id == segment.id) & (Segment.state == SegmentState.SUBMITTED) & same_job)
        .execute()
    )
    if reopened:
        log.warning("attempt %d of %d failed: %s", segment.attempts, job.settings.fal_max_retries + 1, reason, extra=ctx)
        submit(Segment.get_by_id(segment.id), job)


def fail_segment(segment: Segment, reason: str) -> None:
    now = utcnow()
    failed = (
        Segment.update(
            {
                Segment.state: SegmentState.FAILED,
                Segment.error: reason[:4000],
                Segment.progress: "failed",
                Segment.finished_at: now,
                Segment.updated_at: now,
            }
        )
        .where((Segment.id == segment.id) & Segment.state.not_in(SegmentState.TERMINAL))
        .execute()
    )
    if failed:
        log.warning("segment failed: %s", reason, extra=_context(segment))
        # One failed segment and the compositor shows the whole side as a local panel: its other
        # segments' videos would be paid for and thrown away.
        why = f"cancelled: segment {segment.index} of this side failed for good, so the side falls back whole"
        cancel_unusable(segment.call_id, segment.side, reason=why)
        settle_side(segment.call_id, segment.side)


def abandon(segment: Segment, settings: Settings, reason: str) -> None:
    """The call has ended or moved on: stop paying for this job."""
    if segment.fal_request_id and segment.state == SegmentState.SUBMITTED:
        cancel_at_fal(segment.fal_request_id, settings, _context(segment))
    fail_segment(segment, reason)


def cancel_unusable(call_id: str, side: str | None = None, *, reason: str) -> list[str]:
    """End every open segment of the call (or of one side) and cancel its job at fal.ai; the ids cancelled.

    For jobs whose video can no longer be used: the side falls back whole,
    or the call has ended. A submit already on the wire is cancelled when fal
    answers (:func:`record_submission`).
    """
    where = (Segment.call_id == call_id) & Segment.state.not_in(SegmentState.TERMINAL)
    if side is not None:
        where &= Segment.side == side
    settings = get_settings()
    return close_and_cancel(Segment, where, reason=reason, endpoint=model_for(settings.fal_model).endpoint)


def close_and_cancel(model: Any, where: Any, *, reason: str, endpoint: str) -> list[str]:
    """Fail the open rows ``where`` says (segments or speech-to-text jobs), then cancel their jobs at ``endpoint``.

    Each row is closed by a conditional UPDATE first, so a poll collecting
    its result at the same moment stores nothing and a pending row is never
    submitted.
    """
    settings, cancelled = get_settings(), []
    for row in model.select().where(where).order_by(model.side, model.index):
        now = utcnow()
        closed = (
            model.update(
                {
                    model.state: SegmentState.FAILED,
                    model.error: reason[:4000],
                    model.progress: "cancelled",
                    model.finished_at: now,
                    model.updated_at: now,
                }
            )
            .where((model.id == row.id) & model.state.not_in(SegmentState.TERMINAL))
            .execute()
        )
        request_id = model.get_by_id(row.id).fal_request_id  # read after closing: a submit may just have recorded it
        # A pending row's id is its last attempt's, already ended; a new id is a submit that just landed.
        live = row.state == SegmentState.SUBMITTED or request_id != row.fal_request_id
        if closed and request_id and live and cancel_at_fal(request_id, settings, _context(row), endpoint=endpoint):
            cancelled.append(request_id)
    return cancelled


def cancel_at_fal(request_id: str, settings: Settings, ctx: dict, *, endpoint: str | None = None) -> bool:
    """Ask fal.ai to drop a job (the video model's, unless ``endpoint``); False if it could not.

    Best effort: a job that already ended is not billed again.
    """
    if not settings.uses_fal:
        return False
    try:
        fal_queue(settings.fal_key, endpoint or model_for(settings.fal_model).endpoint).cancel(request_id)
    except FalError as exc:
        log.warning("could not cancel fal.ai job %s: %s", request_id, exc, extra=ctx)
        return False
    log.info("cancelled fal.ai job %s: its result would not be used", request_id, extra=ctx)
    return True


def _context(segment: Any) -> dict:
    return {"call_id": segment.call_id, "stage": Stage.GENERATION, "side": segment.side, "segment_id": segment.id}


# -- giving up ------------------------------------------------------------------------------------


def give_up_side(call_id: str | None, side: str | None, exception: BaseException) -> None:
    """generate_side failed for good: the side is FAILED (the call goes on as partial)."""
    if call_id is None or not keys.CALL_ID_RE.match(str(call_id)) or side is None or side not in SIDES:
        log.error("gave up on a malformed generate_side(%r, %r): %s", call_id, side, exception)
        return
    reason = f"generation gave up: {exception}"
    cancel_unusable(call_id, side, reason=reason)
    mark_side(call_id, side, SideState.FAILED, error=reason[:4000])
    fan_in(call_id)


def give_up_segment(segment_id: int | None, exception: BaseException) -> None:
    """poll_segment failed for good: the segment fails (and with it its side)."""
    segment = Segment.get_or_none(Segment.id == segment_id) if isinstance(segment_id, int) else None
    if segment is None:
        log.error("gave up on poll_segment(%r): %s", segment_id, exception)
        return
    abandon(segment, get_settings(), f"gave up after repeated errors: {exception}")
