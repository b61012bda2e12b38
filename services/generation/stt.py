"""Speech-to-text at fal.ai, for a call whose host application supplied no transcript.

The audio stage has already cut each side into segments (their audio in the
store), so each segment is transcribed on its own (STT_MODEL, one job each)
and its chunks' times, offset by the segment's start, land on the call's
timeline (a packed segment's through its pieces, :func:`packed_chunks`); every chunk belongs to the segment's side (a dual-channel recording
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
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from shared import keys, pipeline
from shared.contracts import POLL_TRANSCRIPT
from shared.errors import TransientError
from shared.fal_models import SpeechModel, speech_model_for
from shared.models import Call, Segment, SegmentState, Stage, TranscriptStatus, VideoStatus, utcnow
from shared.settings import Settings, get_settings
from shared.speech_jobs import SpeechJob
from shared.storage import get_storage
from shared.transcript import SPEAKERS, Transcript, Turn, to_json

from . import lifecycle
from .fal import FalError, JobStatus, fal_queue
from .fanin import fan_in, offer_chunks
from .inputs import InputTooLarge, input_url
from .jobs import cancel_at_fal, close_and_cancel, url_expiry
from .lifecycle import claim_poll, close, complete, retry_or_fail

__all__ = ["begin", "poll_transcript", "give_up_job", "give_up_call", "cancel_unusable", "timeline_chunks", "packed_chunks"]

log = logging.getLogger("callreel.generation")

#: The transcript statuses transcription starts from, or carries on in (a redelivered message).
OPEN = (TranscriptStatus.NONE, TranscriptStatus.TRANSCRIBING)
#: A chunk whose end comes out at or before its start is shown this long (seconds).
MIN_CHUNK = 0.5


@dataclass
class Context(lifecycle.Work):
    """What submitting and polling a speech-to-text job needs, built once per message."""

    kind: ClassVar[lifecycle.Kind] = lifecycle.Kind("speech_job_id", "speech-to-text job", "transcript", POLL_TRANSCRIPT)
    model: SpeechModel

    @classmethod
    def build(cls, settings: Settings) -> Context:
        model = speech_model_for(settings.stt_model)
        return cls(settings, get_storage(), fal_queue(settings.fal_key, model.endpoint), model)

    def submit(self, row: Any) -> None:
        submit(row, self)

    def progress(self, status: JobStatus) -> str:
        return f"queued at fal.ai (queue position {status.position})" if status.state == "queued" else "transcribing"

    def keep(self, row: Any, result: Any, expired: bool) -> None:
        keep_chunks(row, self, result)

    def fail(self, row: Any, reason: str) -> None:
        fail_job(row, reason)


def _ctx(job: SpeechJob) -> dict:
    return lifecycle.row_context(job, Context.kind.id_field)


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
        {"call_id": call.id, "side": s.side, "index": s.index, "start": s.start, "end": s.end, "audio_key": s.audio_key, "pieces": s.pieces}
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
                context.schedule_poll(job)  # the poll submits it again
        elif job.state == SegmentState.SUBMITTED and _chain_quiet(job, settings):
            context.schedule_poll(job)  # its poll messages may be lost; a duplicate stops at the gate
    settle(call.id)  # every job may have ended on an earlier delivery


def _chain_quiet(job: SpeechJob, settings: Settings) -> bool:
    """No poll has touched the job for two intervals (each poll does): the other side's message need not start a second chain."""
    return (utcnow() - job.updated_at).total_seconds() > 2 * settings.fal_poll_interval


def submit(job: SpeechJob, context: Context) -> None:
    """Send one pending job to fal.ai; fal.ai being busy puts it back to pending and raises TransientError."""
    if not job.audio_key:
        fail_job(job, "the segment has no audio")
        return
    claimed = lifecycle.claim(job)
    if not claimed:  # another delivery got here first
        return
    try:
        # Without S3 (callreel render/serve) the audio goes inside the request: inputs.py.
        with tempfile.TemporaryDirectory(prefix="callreel-stt-", dir=context.settings.tmp_dir) as folder:
            expires = url_expiry(context.settings)
            audio_url = input_url(context.storage, job.audio_key, "audio/mpeg", context.settings, Path(folder), expires=expires)
    except InputTooLarge as exc:
        fail_job(job, str(exc))
        return
    try:
        request_id = lifecycle.send_job(job, context, context.model.build_input(audio_url, context.settings.stt_language))
    except FalError as exc:
        raise TransientError(f"speech-to-text job {job.id} waits to be submitted again: {exc}") from exc
    if request_id is None:
        return
    SpeechJob.update({SpeechJob.fal_request_id: request_id, SpeechJob.progress: "submitted", SpeechJob.updated_at: utcnow()}).where(
        SpeechJob.id == job.id
    ).execute()
    if SpeechJob.get_by_id(job.id).state != SegmentState.SUBMITTED:  # the transcription was stopped while fal answered
        cancel_at_fal(request_id, context.settings, _ctx(job), endpoint=context.model.endpoint)
        return
    log.info("transcribing %s %.1f-%.1fs with %s as %s", job.side, job.start, job.end, context.model.endpoint, request_id, extra=_ctx(job))
    context.schedule_poll(job)


# -- poll_transcript ------------------------------------------------------------------------------


def poll_transcript(job_id: int) -> None:
    job = lifecycle.polled_row(SpeechJob, job_id, "speech-to-text job")
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
    lifecycle.look(job, Context.build(settings))


def _ended(call: Call) -> bool:
    return call.video_status in VideoStatus.TERMINAL and not call.rerender


def keep_chunks(job: SpeechJob, context: Context, result: Any) -> None:
    """Keep the chunks of a job fal has completed on the call's timeline, or count the failed attempt."""
    try:
        chunks = timeline_chunks(result, job.start, job.end, job.pieces)
    except ValueError as exc:
        retry_or_fail(job, context, f"fal.ai job {job.fal_request_id} returned an unreadable transcript: {exc}")
        return
    done = complete(job, {SpeechJob.chunks: chunks}, f"completed: {len(chunks)} chunk(s)")
    if done:
        log.info("transcribed %s %.1f-%.1fs: %d chunk(s)", job.side, job.start, job.end, len(chunks), extra=_ctx(job))
        settle(job.call_id)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def timeline_chunks(result: Any, offset: float, end: float, pieces: Sequence[Sequence[float]] | None = None) -> list[list[Any]]:
    """``[[start, end, text], …]`` on the call's timeline from a whisper result's ``chunks``.

    A chunk's times count from the start of the segment's audio, so ``offset``
    (the segment's start in the call) is added, and they are kept inside the
    segment. Whisper leaves the last chunk's end null when the audio stops
    mid-word: the segment's end stands in. Chunks without words are dropped.
    A packed segment's (``pieces``) chunks are mapped piece by piece
    (:func:`packed_chunks`). Raises ValueError for a result that is not a whisper result.
    """
    if not isinstance(result, dict) or not isinstance(result.get("chunks"), list):
        raise ValueError(f"no chunks in {str(result)[:200]}")
    if pieces:
        return packed_chunks(result["chunks"], pieces)
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


def _stamps(chunks: list[Any]) -> list[tuple[float | None, float | None, str]]:
    """Each chunk's (start, end, words), checked; chunks without words left out."""
    out = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk is not an object: {str(chunk)[:200]}")
        text, stamp = chunk.get("text"), chunk.get("timestamp")
        if not isinstance(stamp, (list, tuple)) or len(stamp) != 2:
            raise ValueError(f"a chunk has no [start, end] timestamp: {str(chunk)[:200]}")
        if isinstance(text, str) and text.strip():
            out.append((_seconds(stamp[0]), _seconds(stamp[1]), " ".join(text.split())))
    return out


def packed_chunks(chunks: list[Any], pieces: Sequence[Sequence[float]]) -> list[list[Any]]:
    """A packed segment's chunks on the call's timeline: ``[[start, end, text], …]``.

    The segment's audio is its pieces laid end to end (``[start, end, offset]``:
    where the piece is in the call, and where it begins in the audio), so a
    time inside piece ``k`` is moved by that piece's ``start - offset``. A chunk
    that spans pieces (whisper heard two stretches, the other side's turn cut
    out between them, as one sentence) is split: its words are shared among the
    pieces it covers in proportion to its time in each, in order, and each share
    is shown inside its own piece, never across the other side's turn. A null
    start follows the previous chunk; a null end is the end of the audio.
    """
    spans = [(float(s), float(e), float(o), float(o) + float(e) - float(s)) for s, e, o in pieces]  # call start/end, audio from/to
    length = spans[-1][3]
    out: list[list[Any]] = []
    previous = 0.0
    for first, last, text in _stamps(chunks):
        start = min(max(first if first is not None else previous, 0.0), length)
        stop = min(max(last if last is not None else length, 0.0), length)
        if stop <= start:
            stop = min(length, start + MIN_CHUNK)
        if stop <= start:
            continue
        previous = stop
        covered = [(k, max(start, a), min(stop, b)) for k, (_, _, a, b) in enumerate(spans) if min(stop, b) > max(start, a)]
        words = text.split()
        total = sum(b - a for _, a, b in covered)
        taken = 0
        for n, (k, a, b) in enumerate(covered):
            # Cumulative rounding: every word lands in exactly one share, in order.
            upto = len(words) if n == len(covered) - 1 else round(len(words) * sum(y - x for _, x, y in covered[: n + 1]) / total)
            share, taken = words[taken:upto], max(taken, upto)
            if not share:
                continue
            call_start, _, audio_from, _ = spans[k]
            out.append([round(call_start + a - audio_from, 3), round(call_start + b - audio_from, 3), " ".join(share)])
    return out


def fail_job(job: SpeechJob, reason: str) -> None:
    failed = close(SpeechJob, job.id, reason)
    if failed:
        log.warning("speech-to-text job failed: %s", reason, extra=_ctx(job))
        # One failed job and no transcript is stored: the other jobs' words would be paid for in vain.
        cancel_unusable(job.call_id, reason=f"cancelled: {job.side} segment {job.index}'s speech-to-text failed for good")
        settle(job.call_id)


def cancel_unusable(call_id: str, *, reason: str) -> list[str]:
    """End the call's open speech-to-text jobs and cancel them at fal.ai; the ids cancelled."""
    try:
        endpoint = speech_model_for(get_settings().stt_model).endpoint
    except ValueError:  # an unknown STT_MODEL submitted nothing
        endpoint = ""
    open_jobs = (SpeechJob.call_id == call_id) & SpeechJob.state.not_in(SegmentState.TERMINAL)
    return close_and_cancel(SpeechJob, open_jobs, reason=reason, endpoint=endpoint) if endpoint else []


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
        offer_chunks(call_id)  # these words may complete a chunk of a long call
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
    if not fan_in(call_id):
        offer_chunks(call_id)  # the words are stored; segments are still running


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
    """generate_side failed for good: the transcription fails, its jobs at fal are cancelled, and the fan-in goes on."""
    cancel_unusable(call_id, reason=f"generation gave up: {exception}")
    settle(call_id)
