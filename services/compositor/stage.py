"""The compositor stage: one call's split-screen video rendered, its outcome recorded, the host application told.

``compose`` is the entry the actor calls: the pipeline's skeleton
(``shared.skeleton.run``) around :func:`.composer.compose_call`, inside a lock
(``shared/locks.py``) so a duplicate delivery never renders twice at once. A
call that has ended is not composed again (a redelivered message is harmless)
unless the message asks for a re-render, which re-opens the call at the
compositor stage first. Whatever happens, the call's temp folder is removed
and FFmpeg does not outlive the message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shared import pipeline, progress, skeleton
from shared.compose_chunks import ChunkState, ComposeChunk
from shared.contracts import COMPOSE, send
from shared.errors import PermanentError
from shared.ffmpeg import FFmpegError, FFmpegKilled
from shared.locks import exclusive
from shared.logs import log_context
from shared.models import Call, Segment, SegmentState, Stage, VideoStatus, utcnow
from shared.settings import get_settings
from shared.storage import get_storage

from . import chunks
from .callback import send_status
from .composer import Outcome, chunk_spec, compose_call

__all__ = ["compose", "compose_chunk", "give_up", "BUSY_RECHECK_MS"]

log = logging.getLogger("callreel.compositor")

#: A duplicate delivery of a compose in progress elsewhere (see shared/locks.py) looks again after this long.
BUSY_RECHECK_MS = 10_000


def compose(call_id: str, rerender: bool = False) -> None:
    """Render the call's split-screen video, record the outcome, tell the host application."""
    skeleton.check_call_id(call_id)  # before the lock, whose key is made of it
    with exclusive(call_id, Stage.COMPOSITOR) as mine:
        if not mine:
            # RabbitMQ redelivered a message whose connection dropped while a live worker still composes
            # it: look again once that compose has ended (begin() then skips) or its worker has died.
            log.info(
                "another worker is composing this call; looking again in %d s",
                BUSY_RECHECK_MS // 1000,
                extra={"call_id": call_id, "stage": Stage.COMPOSITOR},
            )
            send(COMPOSE, call_id=call_id, delay_ms=BUSY_RECHECK_MS)
            return
        if rerender:
            _reopen(call_id)
        skeleton.run(Stage.COMPOSITOR, call_id, _render, after_finish=_announce)


def compose_chunk(call_id: str, index: int, plan: str) -> None:
    """Render one chunk of a long call for its coordinator (:mod:`.chunks`), if nobody has: any replica may.

    A chunk already claimed or done, of another plan, or of a call no longer
    being composed, is skipped: a redelivered message renders nothing twice.
    """
    skeleton.check_call_id(call_id)
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(plan, str) or not plan.isalnum():
        raise PermanentError(f"invalid chunk {index!r} of plan {plan!r}")
    row = ComposeChunk.get_or_none((ComposeChunk.call_id == call_id) & (ComposeChunk.index == index))
    call = Call.get_or_none(Call.id == call_id)
    if row is None or row.plan != plan or row.state != ChunkState.PENDING or call is None or call.stage != Stage.COMPOSITOR:
        return
    settings, storage = get_settings(), get_storage()
    if not chunks.claim(row, settings):
        return
    with log_context(call_id=call_id, stage=Stage.COMPOSITOR), pipeline.temp_folder(Stage.COMPOSITOR, call_id, settings.tmp_dir) as workdir:
        extra = {"call_id": call_id, "stage": Stage.COMPOSITOR}
        try:
            spec = chunk_spec(call, settings, storage, workdir)
            if chunks.chunk_digest(spec, (row.first_frame, row.last_frame), settings) != plan:
                log.info("chunk %d: this replica's render differs from the plan; left to the coordinator", index, extra=extra)
                chunks.release(row)
                return
        except BaseException:
            chunks.release(row)  # the coordinator meets the same trouble and handles it as a whole render would
            raise
        try:
            chunks.render_claimed(row, spec, settings, storage, extra)
        except FFmpegKilled:
            raise  # given back (chunks.render_claimed): the message is retried, or another replica takes the chunk
        except FFmpegError as exc:
            log.warning("chunk %d failed: %s", index, exc, extra=extra)


def _reopen(call_id: str) -> None:
    """Let an ended call be composed again (its inputs are all still stored)."""
    reopened = (
        Call.update(
            {
                Call.rerender: True,
                Call.stage: Stage.COMPOSITOR,
                Call.video_processing_started_at: None,
                Call.updated_at: utcnow(),
            }
        )
        .where((Call.id == call_id) & Call.video_status.in_(VideoStatus.TERMINAL))
        .execute()
    )
    if reopened:
        log.info("re-render requested", extra={"call_id": call_id, "stage": Stage.COMPOSITOR})


def _render(call: Call) -> dict[str, Any]:
    with progress.timed(call.id, Stage.COMPOSITOR, "compose"):
        outcome = compose_call(call, get_settings(), get_storage())
    return columns_of(call, outcome)


def columns_of(call: Call, outcome: Outcome) -> dict[str, Any]:
    """The outcome and the end of the pipeline, recorded in one UPDATE with the stage's end.

    So a redelivered message finds the call either untouched or finished.
    """
    now = utcnow()
    started = call.video_processing_started_at or call.created_at or now
    columns: dict[str, Any] = {
        "video_status": outcome.status,
        "video_error_message": outcome.error[:4000] if outcome.error else None,
        "stage": Stage.DONE,
        "rerender": False,
        "video_processing_completed_at": now,
        "video_processing_duration": int((now - started).total_seconds()),
    }
    if outcome.video_url:
        columns["video_url"] = outcome.video_url
        columns["poster_url"] = outcome.poster_url  # None clears a re-rendered call's old poster
    for side, url in outcome.side_urls.items():
        if url:
            columns[f"{side}_video_url"] = url
    columns.update(outcome.captions)
    return columns


def _announce(call: Call, columns: Mapping[str, Any]) -> None:
    status, error = columns["video_status"], columns["video_error_message"]
    level = logging.INFO if status == VideoStatus.COMPLETED else logging.WARNING
    log.log(level, "call %s%s", status, f": {error}" if error else "", extra={"call_id": call.id, "stage": Stage.COMPOSITOR})
    send_status(call.id, get_settings())


def give_up(kwargs: dict[str, Any], exception: BaseException) -> None:
    """The message failed for good: the call ends, keeping any side video it has (the plan's fallback)."""
    call_id = kwargs.get("call_id")
    if not isinstance(call_id, str) or Call.get_or_none(Call.id == call_id) is None:
        return
    storage = get_storage()
    urls = {}
    for side in ("caller", "callee"):
        segments = list(
            Segment.select().where((Segment.call_id == call_id) & (Segment.side == side) & (Segment.state == SegmentState.COMPLETED))
        )
        if len(segments) == 1 and segments[0].video_key:
            urls[side] = storage.object_url(segments[0].video_key)
    try:
        chunks.forget(call_id, storage)  # its chunks (early ones too) will not be joined
    except Exception as exc:  # the database or the store is why the compose gave up: the rows wait for a retry's compose
        log.warning("chunk rows not removed: %s", exc, extra={"call_id": call_id, "stage": Stage.COMPOSITOR})
    reason = f"compositing failed: {exception or exception.__class__.__name__}"
    if progress.fail_call(call_id, reason, status=VideoStatus.PARTIAL if urls else VideoStatus.FAILED) and urls:
        Call.update({getattr(Call, f"{side}_video_url"): url for side, url in urls.items()}).where(Call.id == call_id).execute()
    send_status(call_id, get_settings())
