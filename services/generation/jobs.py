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
from pathlib import Path
from typing import Any, ClassVar

import httpx
from peewee import fn

from shared import fal_slots, keys, metrics, pipeline
from shared.contracts import POLL_SEGMENT, send
from shared.errors import TransientError
from shared.fal_models import FalModel, UnknownModel, job_timeout, model_for, poll_interval, segment_limit
from shared.models import SIDES, Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from shared.presentation import presentation_for
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, get_storage

from . import costs, lifecycle
from .avatars import Avatar, avatar_for
from .cache import audio_digest, cache_key, copy_video, find_cached
from .fal import FalError, JobStatus, fal_queue
from .fanin import fan_in, mark_side, settle_side
from .inputs import InputTooLarge, input_url
from .lifecycle import claim_poll, close, complete, later, retry_or_fail
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
    lifetime = max(settings.fal_job_timeout, settings.stage_deadline) + longest_job_timeout(settings) + EXPIRY_MARGIN
    return min(MAX_PRESIGN, max(settings.presigned_url_expiry, lifetime))


def longest_job_timeout(settings: Settings) -> int:
    """The timeout of the longest segment the audio stage plans (FAL_JOB_TIMEOUT at least)."""
    try:
        model = model_for(settings.fal_model)
    except UnknownModel:
        return settings.fal_job_timeout
    return job_timeout(model, segment_limit(model, settings.segment_max_seconds), settings.fal_job_timeout)


@dataclass
class Job(lifecycle.Work):
    """What submitting and polling one side's segments needs, built once per message."""

    kind: ClassVar[lifecycle.Kind] = lifecycle.Kind("segment_id", "job", "video", POLL_SEGMENT)
    model: FalModel
    side: str
    tmp: Path
    avatar_reference: str | None = None  # the call's (shared.presentation); None: the deployment's setting
    _avatar: Avatar | None = field(default=None, init=False)

    @classmethod
    def for_side(cls, side: str, settings: Settings, tmp: Path, *, avatar: str | None = None) -> Job:
        model = model_for(settings.fal_model)
        return cls(settings, get_storage(), fal_queue(settings.fal_key, model.endpoint), model, side, tmp, avatar)

    @property
    def avatar(self) -> Avatar:
        if self._avatar is None:
            self._avatar = avatar_for(
                self.side, self.settings, self.storage, expires=url_expiry(self.settings), reference=self.avatar_reference, workdir=self.tmp
            )
        return self._avatar

    def submit(self, row: Any) -> None:
        submit(row, self)

    def progress(self, status: JobStatus) -> str:
        """Queue position or the job's latest log line."""
        if status.state == "queued":
            return f"queued at fal.ai (queue position {status.position})"
        return f"generating: {status.logs[-1]}" if status.logs else "generating"

    def poll_interval(self, row: Any) -> float:
        return segment_poll_interval(row, self.model, self.settings)

    def timeout(self, row: Any) -> int:
        """The segment's length at the model's compute ratio (with a safety factor), FAL_JOB_TIMEOUT at least."""
        return job_timeout(self.model, row.seconds, self.settings.fal_job_timeout)

    def keep(self, row: Any, result: Any, expired: bool) -> None:
        keep_video(row, self, result, expired)

    def fail(self, row: Any, reason: str) -> None:
        fail_segment(row, reason)


def segment_poll_interval(segment: Segment, model: FalModel, settings: Settings) -> float:
    """A submitted job is looked at paced by its length (``shared.fal_models.poll_interval``); a waiting one at FAL_POLL_INTERVAL.

    Waiters are woken when a slot frees (:func:`hand_on`): their own polls are
    only the fallback, so they keep the setting's slower pace.
    """
    if segment.state != SegmentState.SUBMITTED:
        return settings.fal_poll_interval
    return poll_interval(model, segment.seconds, settings.fal_poll_interval)


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
    over = costs.over_budget(call_id, model_for(settings.fal_model), settings)
    if over is not None:  # the cost guard: local panels, the call partial with the reason
        close_and_cancel(Segment, (Segment.call_id == call_id) & (Segment.side == side) & Segment.state.not_in(SegmentState.TERMINAL),
                         reason=over, endpoint=model_for(settings.fal_model).endpoint)
        if mark_side(call_id, side, SideState.FAILED, error=over):
            costs.fell_back(call_id, side)
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
                job.schedule_poll(segment)
    settle_side(call_id, side)  # every segment may have come from the cache
    if waiting:
        raise TransientError(f"{len(waiting)} segment(s) wait to be submitted again: {'; '.join(waiting)[:1000]}")


def submit(segment: Segment, job: Job) -> None:
    """Send one pending segment to fal.ai, or reuse an identical earlier video. Transient trouble raises FalError."""
    ctx = job.context(segment)
    if not segment.audio_key:
        fail_segment(segment, "the segment has no audio")
        return
    if not take_slot(segment, job):
        return  # it waits its turn for one of FAL_MAX_CONCURRENT_JOBS; its poll comes back
    try:
        sha = audio_digest(job.storage, segment.audio_key, job.tmp)
    except ObjectNotFound:
        fail_segment(segment, f"the segment's audio {segment.audio_key} is missing from the store")
        return
    seconds = segment.seconds  # a packed job's audio: its pieces added
    try:
        avatar = job.avatar
    except InputTooLarge as exc:
        fail_segment(segment, str(exc))
        return
    key = cache_key(sha, job.model, avatar, job.settings.fal_prompt, seconds, segment.pieces)
    if reuse(segment, key, job):
        hand_on(segment)
        return
    claimed = lifecycle.claim(segment, {Segment.cache_key: key})
    if not claimed:  # another delivery got here first
        return
    try:
        audio_url = input_url(job.storage, segment.audio_key, "audio/mpeg", job.settings, job.tmp, expires=url_expiry(job.settings))
    except InputTooLarge as exc:
        fail_segment(segment, str(exc))
        return
    arguments = job.model.build_input(avatar.url, audio_url, job.settings.fal_prompt, seconds)
    try:
        request_id = lifecycle.send_job(segment, job, arguments)  # transient trouble raises FalError
    except FalError as exc:
        hand_on(segment)
        if exc.status_code == 429:  # fal asks us to slow down: the segment waits its turn again, the call never fails for it
            metrics.fal_rate_limited()
            lifecycle.note(segment, f"fal.ai is rate limiting (429), submitting again later: {exc}")
            send(POLL_SEGMENT, delay_ms=int(max(job.settings.fal_poll_interval * 2, 5.0) * 1000), segment_id=segment.id)
            return
        raise
    if request_id is None:
        return
    record_submission(segment, request_id)
    log.info("submitted %.1f-%.1fs to %s as %s", segment.start, segment.end, job.model.endpoint, request_id, extra=ctx)
    # The row is submitted now (this instance still says pending): the job's own pace from the first look.
    lifecycle.schedule_poll(segment, job.kind, job.settings, poll_interval(job.model, seconds, job.settings.fal_poll_interval))


def take_slot(segment: Segment, job: Job) -> bool:
    """Hold one of the FAL_MAX_CONCURRENT_JOBS slots for the segment's next attempt, or wait for it (fair order)."""
    settings = job.settings
    fal_slots.release_older(segment)  # a retried segment's earlier attempt
    if fal_slots.acquire(segment, settings.fal_max_concurrent_jobs, settings.fal_poll_interval) is not None:
        return True
    text = f"waiting for a fal.ai slot ({settings.fal_max_concurrent_jobs} jobs at once, FAL_MAX_CONCURRENT_JOBS)"
    if segment.progress != text:
        lifecycle.note(segment, text)
    job.schedule_poll(segment)
    return False


def hand_on(segment: Any) -> None:
    """Free the segment's slot and wake the waiter whose turn it is (its own poll would come anyway, later)."""
    settings = get_settings()
    if settings.fal_max_concurrent_jobs <= 0 or not fal_slots.release(segment.id):
        return
    alive = utcnow() - fal_slots.lease_delta(settings.fal_poll_interval)
    for waiting in fal_slots.waiting_order(alive, limit=1):
        send(POLL_SEGMENT, segment_id=waiting)


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


# -- poll_segment ---------------------------------------------------------------------------------


def poll_segment(segment_id: int) -> None:
    segment = lifecycle.polled_row(Segment, segment_id, "segment")
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
    try:
        pace = segment_poll_interval(segment, model_for(settings.fal_model), settings)
    except UnknownModel:
        pace = settings.fal_poll_interval
    if not claim_poll(segment, settings, pace):
        return  # a duplicate poll of the same job (a redelivered message): the other one carries on
    segment = Segment.get_by_id(segment_id)
    if segment.state == SegmentState.SUBMITTED and settings.fal_max_concurrent_jobs > 0:
        fal_slots.renew(segment, settings.fal_poll_interval)
    with pipeline.temp_folder(Stage.GENERATION, segment.call_id, settings.tmp_dir) as tmp:
        job = Job.for_side(segment.side, settings, tmp)
        lifecycle.look(segment, job)


def _call_moved_on(call: Call) -> bool:
    ended = call.video_status in VideoStatus.TERMINAL and not call.rerender
    return ended or pipeline.order(call.stage) > pipeline.order(Stage.GENERATION)


def keep_video(segment: Segment, job: Job, result: Any, expired: bool) -> None:
    """Store the video of a job fal has completed, or count the failed attempt.

    The job no longer runs at fal, so its slot is handed on before the video
    is fetched and stored: the next waiter's job starts while this one's
    download and upload run, instead of after them. A retry (an unusable
    video) takes a slot again through :func:`submit`; releasing twice is harmless.
    """
    request_id = segment.fal_request_id
    hand_on(segment)
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
        log.warning("video download failed, will retry: %s", exc, extra=job.context(segment))
        later(segment, job, expired, f"fal.ai job {request_id}: video download kept failing ({exc})")
        return
    if complete(segment, {Segment.video_key: key}, f"completed: {size} bytes stored"):
        log.info("video stored as %s (%d bytes)", key, size, extra=job.context(segment))
        settle_side(segment.call_id, segment.side)


def fail_segment(segment: Segment, reason: str) -> None:
    failed = close(Segment, segment.id, reason)
    hand_on(segment)
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
        closed = close(model, row.id, reason, progress="cancelled")
        if model is Segment:
            hand_on(row)
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
