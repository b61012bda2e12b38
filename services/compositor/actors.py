"""The compositor's worker: ``dramatiq services.compositor.actors`` (queue ``compositor``).

``compose`` follows ``shared.progress``'s pattern. A call that has ended is not
composed again (a redelivered message is harmless) unless the message asks for
a re-render, which re-opens the call at the compositor stage first. Whatever
happens, the call's temp folder is removed and FFmpeg does not outlive the
message.
"""

from __future__ import annotations

from shared.runtime import boot

broker = boot("compositor")

import logging  # noqa: E402
from typing import Any  # noqa: E402

from shared import janitor, keys, progress  # noqa: E402  (actors bind to the broker boot() set up)
from shared.contracts import COMPOSE, actor, on_give_up, send  # noqa: E402
from shared.locks import exclusive  # noqa: E402
from shared.models import Call, Segment, SegmentState, Stage, VideoStatus, utcnow  # noqa: E402
from shared.progress import PermanentError  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.storage import get_storage  # noqa: E402

from .callback import send_status  # noqa: E402
from .composer import Outcome, compose_call  # noqa: E402

__all__ = ["compose"]

log = logging.getLogger("callreel.compositor")

# Dramatiq's limit for one message: FFmpeg has COMPOSE_TIMEOUT of its own
# (enforced on the process), plus time for downloads, probes and the upload.
TRANSFER_ALLOWANCE = 900
#: A duplicate delivery of a compose in progress elsewhere (see shared/locks.py) looks again after this long.
BUSY_RECHECK_MS = 10_000
TIME_LIMIT = get_settings().compose_timeout + TRANSFER_ALLOWANCE  # seconds

# Folders of composes whose worker was killed: no message can still be using one older than TIME_LIMIT.
janitor.remove_stale(get_settings().tmp_dir, "compose", TIME_LIMIT)


@actor(
    COMPOSE,
    max_retries=3,
    min_backoff=15_000,
    throws=(PermanentError,),
    time_limit=TIME_LIMIT * 1000,
)
def compose(call_id: str, rerender: bool = False) -> None:
    """Render the call's split-screen video, record the outcome, tell the host application."""
    try:
        keys.validate_call_id(call_id)
    except keys.InvalidCallId as exc:
        raise PermanentError(str(exc)) from None
    with exclusive(call_id, Stage.COMPOSITOR) as mine:
        if not mine:
            # RabbitMQ redelivered a message whose connection dropped while a live worker still composes
            # it: look again once that compose has ended (begin() then skips) or its worker has died.
            log.info("another worker is composing this call; looking again in %d s", BUSY_RECHECK_MS // 1000, extra={"call_id": call_id, "stage": Stage.COMPOSITOR})
            send(COMPOSE, call_id=call_id, delay_ms=BUSY_RECHECK_MS)
            return
        if rerender:
            _reopen(call_id)
        call = progress.begin(call_id, Stage.COMPOSITOR)
        if call is None:
            return
        with progress.timed(call_id, Stage.COMPOSITOR, "compose"):
            outcome = compose_call(call, get_settings(), get_storage())
        _record(call_id, outcome)
        send_status(call_id, get_settings())


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


def _record(call_id: str, outcome: Outcome) -> None:
    now = utcnow()
    call = Call.get_by_id(call_id)
    started = call.video_processing_started_at or call.created_at or now
    # One UPDATE: the outcome and the end of the pipeline land together, so a
    # redelivered message finds the call either untouched or finished.
    columns: dict[Any, Any] = {
        Call.video_status: outcome.status,
        Call.video_error_message: outcome.error[:4000] if outcome.error else None,
        Call.stage: Stage.DONE,
        Call.rerender: False,
        Call.compositor_finished_at: now,
        Call.video_processing_completed_at: now,
        Call.video_processing_duration: int((now - started).total_seconds()),
        Call.updated_at: now,
    }
    if outcome.video_url:
        columns[Call.video_url] = outcome.video_url
    for side, url in outcome.side_urls.items():
        if url:
            columns[getattr(Call, f"{side}_video_url")] = url
    Call.update(columns).where(Call.id == call_id).execute()
    level = logging.INFO if outcome.status == VideoStatus.COMPLETED else logging.WARNING
    log.log(level, "call %s%s", outcome.status, f": {outcome.error}" if outcome.error else "", extra={"call_id": call_id, "stage": Stage.COMPOSITOR})


@on_give_up(COMPOSE)
def _gave_up(kwargs: dict[str, Any], exception: BaseException) -> None:
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
    reason = f"compositing failed: {exception or exception.__class__.__name__}"
    if progress.fail_call(call_id, reason, status=VideoStatus.PARTIAL if urls else VideoStatus.FAILED) and urls:
        Call.update({getattr(Call, f"{side}_video_url"): url for side, url in urls.items()}).where(Call.id == call_id).execute()
    send_status(call_id, get_settings())
