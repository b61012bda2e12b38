"""Speech-to-text at fal.ai, for a call whose host application supplied no transcript.

The audio stage has already cut each side into segments (their audio in the
store), so each segment is transcribed on its own (STT_MODEL, one job each)
and its chunks' times, offset by the segment's start, land on the call's
timeline; every chunk belongs to the segment's side (a dual-channel recording
has one voice a channel). The jobs go to fal.ai alongside the avatar jobs,
when ``generate_side`` begins the stage, and are followed the same way: one
status check per ``poll_transcript`` message, re-sent with a delay, so no
worker thread waits. A job's life is a segment's (``shared.speech_jobs``)::

    pending ──submit──▶ submitted ──poll…──▶ completed (its chunks in the row)
       ▲                    │ failed / timed out (cancelled at fal)
       └──── attempt ≤ FAL_MAX_RETRIES ◀┘──────────▶ failed

When every job has ended the call's ``transcript_status`` ends too:
``completed`` with ``transcripts/{callId}.json`` stored, or ``failed`` with the
reason in ``transcript_error``. Captions never fail a video: a failed
transcription only leaves the video without captions. The fan-in waits for the
transcript as it waits for the sides (each job is bounded like an avatar job:
FAL_JOB_TIMEOUT once it runs, FAL_MAX_RETRIES attempts), then hands the call on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import keys, pipeline
from shared.contracts import POLL_TRANSCRIPT, send
from shared.errors import PermanentError, TransientError
from shared.fal_models import SpeechModel, speech_model_for
from shared.models import Call, Segment, SegmentState, Stage, TranscriptStatus, VideoStatus, utcnow
from shared.settings import Settings, get_settings
from shared.speech_jobs import SpeechJob
from shared.storage import Storage, get_storage
from shared.transcript import SPEAKERS, Transcript, Turn, to_json

from .fal import TRANSIENT_CODES, FalError, FalQueue, JobStatus, fal_queue
from .fanin import fan_in
from .jobs import url_expiry

__all__ = ["begin", "poll_transcript", "give_up_job", "give_up_call", "timeline_chunks"]

log = logging.getLogger("callreel.generation")

#: The transcript statuses transcription starts from, or carries on in (a redelivered message).
OPEN = (TranscriptStatus.NONE, TranscriptStatus.TRANSCRIBING)
#: A chunk whose end comes out at or before its start is shown this long (seconds).
MIN_CHUNK = 0.5


@dataclass
class Context:
    """What submitting and polling a speech-to-text job needs, built once per message."""

    settings: Settings
    storage: Storage
    model: SpeechModel
    fal: FalQueue

    @classmethod
    def build(cls, settings: Settings) -> Context:
        model = speech_model_for(settings.stt_model)
        return cls(settings, get_storage(), model, fal_queue(settings.fal_key, model.endpoint))


def _ctx(job: SpeechJob) -> dict:
    return {"call_id": job.call_id, "stage": Stage.GENERATION, "side": job.side, "speech_job_id": job.id}


# -- begin (from generate_side) -------------------------------------------------------------------


def begin(call: Call) -> None:
    """Plan and submit the call's transcription, or (redelivered) make sure every job is followed.

    Runs before the avatar jobs of the message, so the transcript is marked
    ``transcribing`` before a side can end and try the fan-in. fal.ai being
    busy does not fail the message: the job waits for its poll to submit it.
    """
    settings = get_settings()
    if not settings.uses_fal or (call.transcript_status or TranscriptStatus.NONE) not in OPEN:
        return
    segments = list(Segment.select().where(Segment.call_id == call.id).order_by(Segment.side, Segment.index))
    if not segments:
        return
    rows = [
        {"call_id": call.id, "side": s.side, "index": s.index, "start": s.start, "end": s.end, "audio_key": s.audio_key}
        for s in segments
    ]
    SpeechJob.insert_many(rows).on_conflict_ignore().execute()
    Call.update({Call.transcript_status: TranscriptStatus.TRANSCRIBING, Call.transcript_error: None, Call.updated_at: utcnow()}).where(
        (Call.id == call.id) & (Call.transcript_status.is_null() | (Call.transcript_status == TranscriptStatus.NONE))
    ).execute()
    if Call.select(Call.transcript_status).where(Call.id == call.id).scalar() != TranscriptStatus.TRANSCRIBING:
        return  # a transcript was supplied meanwhile
    context = Context.build(settings)
    for job in SpeechJob.select().where(SpeechJob.call_id == call.id).order_by(SpeechJob.side, SpeechJob.index):
        if job.state == SegmentState.PENDING:
            try:
                submit(job, context)
            except TransientError:
                schedule_poll(job, settings)  # the poll submits it again
        elif job.state == SegmentState.SUBMITTED and _chain_quiet(job, settings):
            schedule_poll(job, settings)  # its poll messages may be lost; a duplicate stops at the gate
    settle(call.id)  # every job may have ended on an earlier delivery


def _chain_quiet(job: SpeechJob, settings: Settings) -> bool:
    """No poll has touched the job for two intervals (each poll does): the other side's message need not start a second chain."""
    return (utcnow() - job.updated_at).total_seconds() > 2 * settings.fal_poll_interval


def submit(job: SpeechJob, context: Context) -> None:
    """Send one pending job to fal.ai; fal.ai being busy puts it back to pending and raises TransientError."""
    if not job.audio_key:
        fail_job(job, "the segment has no audio")
        return
    now = utcnow()
    claimed = (
        SpeechJob.update(
            {
                SpeechJob.state: SegmentState.SUBMITTED,
                SpeechJob.attempts: SpeechJob.attempts + 1,
                SpeechJob.submitted_at: now,
                SpeechJob.started_at: None,
                SpeechJob.fal_request_id: None,
                SpeechJob.progress: "submitting",
                SpeechJob.updated_at: now,
            }
        )
        .where((SpeechJob.id == job.id) & (SpeechJob.state == SegmentState.PENDING))
        .execute()
    )
    if not claimed:  # another delivery got here first
        return
    audio_url = context.storage.presigned_url(job.audio_key, expires=url_expiry(context.settings))
    try:
        request_id = context.fal.submit(context.model.build_input(audio_url, context.settings.stt_language))
    except FalError as exc:
        if exc.transient:
            SpeechJob.update(
                {
                    SpeechJob.state: SegmentState.PENDING,
                    SpeechJob.attempts: SpeechJob.attempts - 1,
                    SpeechJob.progress: f"waiting to submit again: {exc}"[:1000],
                    SpeechJob.updated_at: utcnow(),
                }
            ).where((SpeechJob.id == job.id) & (SpeechJob.state == SegmentState.SUBMITTED) & SpeechJob.fal_request_id.is_null()).execute()
            log.warning("speech-to-text submit deferred: %s", exc, extra=_ctx(job))
            raise TransientError(f"speech-to-text job {job.id} waits to be submitted again: {exc}") from exc
        fail_job(job, f"fal.ai refused the speech-to-text job (not retried): {exc}")
        return
    SpeechJob.update({SpeechJob.fal_request_id: request_id, SpeechJob.progress: "submitted", SpeechJob.updated_at: utcnow()}).where(
        SpeechJob.id == job.id
    ).execute()
    log.info("transcribing %s %.1f-%.1fs with %s as %s", job.side, job.start, job.end, context.model.endpoint, request_id, extra=_ctx(job))
    schedule_poll(job, context.settings)


def schedule_poll(job: SpeechJob, settings: Settings) -> None:
    send(POLL_TRANSCRIPT, job_id=job.id, delay_ms=int(settings.fal_poll_interval * 1000))


# -- poll_transcript ------------------------------------------------------------------------------


def poll_transcript(job_id: int) -> None:
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        raise PermanentError(f"invalid speech-to-text job id {job_id!r}")
    job = SpeechJob.get_or_none(SpeechJob.id == job_id)
    if job is None:
        return
    if job.state in SegmentState.TERMINAL:
        settle(job.call_id)  # a redelivery of the poll that ended it: settling twice changes nothing
        return
    settings = get_settings()
    call = Call.get_or_none(Call.id == job.call_id)
    if call is None or not settings.uses_fal or call.transcript_status != TranscriptStatus.TRANSCRIBING or _ended(call):
        abandon(job, settings, "the call's transcription was stopped before this job ended")
        return
    if not claim_poll(job, settings):
        return  # a duplicate poll of the same job: the other chain carries on
    job = SpeechJob.get_by_id(job_id)
    context = Context.build(settings)
    if job.state == SegmentState.PENDING:  # its submit met transient trouble: Dramatiq retries this message
        submit(job, context)
        return
    follow(job, context)


def _ended(call: Call) -> bool:
    return call.video_status in VideoStatus.TERMINAL and not call.rerender


def claim_poll(job: SpeechJob, settings: Settings) -> bool:
    """One poll chain per job: a poll passes only if the row was last touched half an interval ago (as jobs.claim_poll)."""
    now = utcnow()
    return bool(
        SpeechJob.update({SpeechJob.updated_at: now})
        .where(
            (SpeechJob.id == job.id)
            & SpeechJob.state.in_((SegmentState.PENDING, SegmentState.SUBMITTED))
            & (SpeechJob.updated_at <= now - timedelta(seconds=settings.fal_poll_interval / 2))
        )
        .execute()
    )


def follow(job: SpeechJob, context: Context) -> None:
    """One look at a submitted job: wait, collect its words, or time it out (the same limits as an avatar job)."""
    settings, request_id, now = context.settings, job.fal_request_id, utcnow()
    waited = (now - job.submitted_at).total_seconds() if job.submitted_at else float("inf")
    queue_limit = max(settings.fal_job_timeout, settings.stage_deadline)
    if job.started_at is not None:
        expired = (now - job.started_at).total_seconds() > settings.fal_job_timeout
        why = f"no transcript after {settings.fal_job_timeout}s"
    else:
        expired = waited > queue_limit
        why = f"not started by fal.ai within {queue_limit}s"
    if request_id is None:  # the submitting worker stopped before fal answered
        later(job, context, waited > settings.fal_job_timeout, "fal.ai never acknowledged the submission")
        return
    try:
        status = context.fal.status(request_id)
    except FalError as exc:
        if not exc.transient:
            retry_or_fail(job, context, f"fal.ai lost job {request_id}: {exc}")
            return
        note(job, f"status unavailable, will ask again: {exc}")
        later(job, context, expired, f"job {request_id}: {why}, status unavailable ({exc})", cancel_first=True)
        return
    if status.done:
        collect(job, context, status, expired)
        return
    if status.state == "running" and job.started_at is None:
        SpeechJob.update({SpeechJob.started_at: now}).where((SpeechJob.id == job.id) & SpeechJob.started_at.is_null()).execute()
        expired = False
    if expired:
        cancel(job, context)
        retry_or_fail(job, context, f"job {request_id}: {why}; cancelled")
        return
    note(job, f"queued at fal.ai (queue position {status.position})" if status.state == "queued" else "transcribing")
    schedule_poll(job, settings)


def later(job: SpeechJob, context: Context, expired: bool, reason: str, *, cancel_first: bool = False) -> None:
    """Look again after the poll interval, unless the job's time is up: then it is a failed attempt."""
    if not expired:
        schedule_poll(job, context.settings)
        return
    if cancel_first and job.fal_request_id:
        cancel(job, context)
    retry_or_fail(job, context, reason)


def note(job: SpeechJob, text: str) -> None:
    SpeechJob.update({SpeechJob.progress: text[:1000]}).where(SpeechJob.id == job.id).execute()


def collect(job: SpeechJob, context: Context, status: JobStatus, expired: bool) -> None:
    """The job has ended: keep its chunks on the call's timeline, or count the failed attempt."""
    request_id = job.fal_request_id
    assert request_id is not None, "collect follows a job fal acknowledged"
    if status.error:
        reason = f"fal.ai speech-to-text job {request_id} failed: {status.error}"
        try:
            context.fal.result(request_id)
            code = None
        except FalError as exc:
            if exc.status_code is None:  # the network, not the job
                later(job, context, expired, reason)
                return
            code, reason = exc.status_code, f"{reason} ({exc})"
        # The model refusing its input (422…) will refuse it again; anything else may pass next time.
        invalid = code is not None and 400 <= code < 500 and code not in TRANSIENT_CODES
        retry_or_fail(job, context, reason, retryable=not invalid)
        return
    try:
        result = context.fal.result(request_id)
    except FalError as exc:
        if exc.transient:
            later(job, context, expired, f"fal.ai job {request_id}: result unavailable ({exc})")
        else:
            fail_job(job, f"fal.ai refused the speech-to-text job's input (not retried): {exc}")
        return
    try:
        chunks = timeline_chunks(result, job.start, job.end)
    except ValueError as exc:
        retry_or_fail(job, context, f"fal.ai job {request_id} returned an unreadable transcript: {exc}")
        return
    now = utcnow()
    done = (
        SpeechJob.update(
            {
                SpeechJob.state: SegmentState.COMPLETED,
                SpeechJob.chunks: chunks,
                SpeechJob.error: None,
                SpeechJob.progress: f"completed: {len(chunks)} chunk(s)",
                SpeechJob.finished_at: now,
                SpeechJob.updated_at: now,
            }
        )
        .where((SpeechJob.id == job.id) & (SpeechJob.state == SegmentState.SUBMITTED) & (SpeechJob.fal_request_id == request_id))
        .execute()
    )
    if done:
        log.info("transcribed %s %.1f-%.1fs: %d chunk(s)", job.side, job.start, job.end, len(chunks), extra=_ctx(job))
        settle(job.call_id)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def timeline_chunks(result: Any, offset: float, end: float) -> list[list[Any]]:
    """``[[start, end, text], …]`` on the call's timeline from a whisper result's ``chunks``.

    A chunk's times count from the start of the segment's audio, so ``offset``
    (the segment's start in the call) is added, and they are kept inside the
    segment. Whisper leaves the last chunk's end null when the audio stops
    mid-word: the segment's end stands in. Chunks without words are dropped.
    Raises ValueError for a result that is not a whisper result.
    """
    if not isinstance(result, dict) or not isinstance(result.get("chunks"), list):
        raise ValueError(f"no chunks in {str(result)[:200]}")
    out: list[list[Any]] = []
    previous_end = 0.0
    for chunk in result["chunks"]:
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk is not an object: {str(chunk)[:200]}")
        text = chunk.get("text")
        stamp = chunk.get("timestamp")
        if not isinstance(stamp, (list, tuple)) or len(stamp) != 2:
            raise ValueError(f"a chunk has no [start, end] timestamp: {str(chunk)[:200]}")
        if not isinstance(text, str) or not text.strip():
            continue
        first, last = _seconds(stamp[0]), _seconds(stamp[1])
        start = offset + (first if first is not None else previous_end)
        stop = offset + last if last is not None else end
        start, stop = max(offset, min(start, end)), max(offset, min(stop, end))
        if stop <= start:
            stop = min(end, start + MIN_CHUNK)
        if stop <= start:
            continue
        previous_end = stop - offset
        out.append([round(start, 3), round(stop, 3), " ".join(text.split())])
    return out


def cancel(job: SpeechJob, context: Context) -> None:
    """Ask fal to drop the job (best effort: a job that already ended cannot be cancelled)."""
    if job.fal_request_id is None:  # nothing was submitted: nothing to cancel
        return
    try:
        context.fal.cancel(job.fal_request_id)
    except FalError as exc:
        log.warning("could not cancel fal.ai job %s: %s", job.fal_request_id, exc, extra=_ctx(job))


def retry_or_fail(job: SpeechJob, context: Context, reason: str, *, retryable: bool = True) -> None:
    """One attempt failed: submit again while attempts remain, otherwise the job fails."""
    if not retryable or job.attempts > context.settings.fal_max_retries:
        fail_job(job, reason if retryable else f"{reason} (not retried)")
        return
    same = SpeechJob.fal_request_id.is_null() if job.fal_request_id is None else SpeechJob.fal_request_id == job.fal_request_id
    reopened = (
        SpeechJob.update(
            {
                SpeechJob.state: SegmentState.PENDING,
                SpeechJob.error: reason[:4000],
                SpeechJob.progress: f"attempt {job.attempts} failed, trying again",
                SpeechJob.updated_at: utcnow(),
            }
        )
        .where((SpeechJob.id == job.id) & (SpeechJob.state == SegmentState.SUBMITTED) & same)
        .execute()
    )
    if reopened:
        log.warning("speech-to-text attempt %d failed: %s", job.attempts, reason, extra=_ctx(job))
        submit(SpeechJob.get_by_id(job.id), context)


def fail_job(job: SpeechJob, reason: str) -> None:
    now = utcnow()
    failed = (
        SpeechJob.update(
            {
                SpeechJob.state: SegmentState.FAILED,
                SpeechJob.error: reason[:4000],
                SpeechJob.progress: "failed",
                SpeechJob.finished_at: now,
                SpeechJob.updated_at: now,
            }
        )
        .where((SpeechJob.id == job.id) & SpeechJob.state.not_in(SegmentState.TERMINAL))
        .execute()
    )
    if failed:
        log.warning("speech-to-text job failed: %s", reason, extra=_ctx(job))
        settle(job.call_id)


def abandon(job: SpeechJob, settings: Settings, reason: str) -> None:
    """Stop paying for a job whose transcript is no longer wanted."""
    if job.fal_request_id and job.state == SegmentState.SUBMITTED and settings.uses_fal:
        try:
            fal_queue(settings.fal_key, speech_model_for(settings.stt_model).endpoint).cancel(job.fal_request_id)
        except (FalError, ValueError) as exc:
            log.warning("could not cancel fal.ai job %s: %s", job.fal_request_id, exc, extra=_ctx(job))
    fail_job(job, reason)


# -- the call's transcript ------------------------------------------------------------------------


def settle(call_id: str) -> None:
    """When every job of the call has ended, end its transcript (completed or failed), then try the fan-in."""
    jobs = list(SpeechJob.select().where(SpeechJob.call_id == call_id).order_by(SpeechJob.side, SpeechJob.index))
    if not jobs or any(j.state not in SegmentState.TERMINAL for j in jobs):
        return
    if Call.select(Call.transcript_status).where(Call.id == call_id).scalar() == TranscriptStatus.TRANSCRIBING:
        failed = [j for j in jobs if j.state == SegmentState.FAILED]
        if failed:
            reasons = "; ".join(f"{j.side} segment {j.index} ({j.start:.1f}-{j.end:.1f}s): {j.error}" for j in failed[:3])
            more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
            error = f"{len(failed)} of {len(jobs)} speech-to-text job(s) failed: {reasons}{more}"
            end_transcript(call_id, TranscriptStatus.FAILED, error=error)
        else:
            store_transcript(call_id, jobs)
    fan_in(call_id)


def store_transcript(call_id: str, jobs: list[SpeechJob]) -> None:
    """Both sides' chunks as turns ordered by time, stored at ``transcripts/{callId}.json``."""
    turns = [Turn(j.side, start, end, text) for j in jobs for start, end, text in (j.chunks or ())]
    if not turns:
        end_transcript(call_id, TranscriptStatus.FAILED, error="speech-to-text heard no words in the call")
        return
    transcript = Transcript(tuple(sorted(turns, key=lambda t: (t.start, t.end, SPEAKERS.index(t.speaker)))))
    settings, storage, key = get_settings(), get_storage(), keys.transcript_key(call_id)
    with pipeline.temp_folder(Stage.GENERATION, call_id, settings.tmp_dir) as tmp:
        path = tmp / "transcript.json"
        path.write_text(to_json(transcript), encoding="utf-8")
        # Checked again just before writing: a transcript supplied meanwhile is never overwritten.
        if Call.select(Call.transcript_status).where(Call.id == call_id).scalar() != TranscriptStatus.TRANSCRIBING:
            return
        storage.upload_file(path, key, content_type="application/json")
    end_transcript(call_id, TranscriptStatus.COMPLETED, url=storage.object_url(key))


def end_transcript(call_id: str, status: str, *, error: str | None = None, url: str | None = None) -> bool:
    """Move the call's transcript from ``transcribing`` to ``status``, once."""
    updates = {Call.transcript_status: status, Call.transcript_error: error[:4000] if error else None, Call.updated_at: utcnow()}
    if url is not None:
        updates[Call.transcript_url] = url
    changed = bool(
        Call.update(updates).where((Call.id == call_id) & (Call.transcript_status == TranscriptStatus.TRANSCRIBING)).execute()
    )
    if changed:
        log.info("transcript %s%s", status, f": {error}" if error else "", extra={"call_id": call_id, "stage": Stage.GENERATION})
    return changed


# -- giving up ------------------------------------------------------------------------------------


def give_up_job(job_id: int | None, exception: BaseException) -> None:
    """poll_transcript failed for good: the job fails (and with it the transcript, never the video)."""
    job = SpeechJob.get_or_none(SpeechJob.id == job_id) if isinstance(job_id, int) else None
    if job is None:
        log.error("gave up on poll_transcript(%r): %s", job_id, exception)
        return
    if job.state in SegmentState.TERMINAL:  # the words were heard, but storing the transcript kept failing
        end_transcript(job.call_id, TranscriptStatus.FAILED, error=f"the transcript could not be stored: {exception}")
        fan_in(job.call_id)
        return
    abandon(job, get_settings(), f"gave up after repeated errors: {exception}")


def give_up_call(call_id: str, exception: BaseException) -> None:
    """generate_side failed for good: jobs it never submitted fail, so the fan-in does not wait on them."""
    for job in SpeechJob.select().where((SpeechJob.call_id == call_id) & (SpeechJob.state == SegmentState.PENDING)):
        fail_job(job, f"generation gave up before submitting it: {exception}")
