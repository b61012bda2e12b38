"""A call's history: one row per thing that happened to it, in ``callreel_events``.

Each event is recorded from the one place it happens: the webhook
(``received``), ``shared.progress`` (a stage ``stage.begun`` / ``stage.finished``,
the call ``call.failed``), ``shared.skeleton`` (an attempt that raised:
``stage.failed``), the fal job lifecycle (``fal.submitted`` / ``fal.completed`` /
``fal.failed`` / ``fal.cancelled``), ``shared.retry`` (``retried``, by whom),
the sweeper (``swept``) and the console's actions (``operator.*``).

:func:`record` never breaks the work it describes: a history row that cannot
be written is logged and dropped (inside a savepoint, so a failed INSERT does
not poison the caller's transaction on PostgreSQL). Every row names the
process that wrote it (``host/pid``), so a page can say which worker ran an
attempt.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from peewee import BigAutoField, CharField, DateTimeField, Model

from .db import database
from .models import JSONField, utcnow

__all__ = ["Event", "record", "history", "worker_name", "Kind"]

log = logging.getLogger("callreel.events")

DETAIL_MAX_CHARS = 2000


class Kind:
    """The kinds of event, as stored (the page and the API show them as they are)."""

    RECEIVED = "received"
    STAGE_BEGUN = "stage.begun"
    STAGE_FINISHED = "stage.finished"
    STAGE_FAILED = "stage.failed"
    CALL_FAILED = "call.failed"
    FAL_SUBMITTED = "fal.submitted"
    FAL_COMPLETED = "fal.completed"
    FAL_FAILED = "fal.failed"
    FAL_CANCELLED = "fal.cancelled"
    RETRIED = "retried"
    SWEPT = "swept"
    RERENDER = "operator.rerender"
    MEDIA_DELETED = "operator.delete_media"
    DEAD_LETTER_RETRIED = "operator.dead_letter_retry"
    DEAD_LETTER_DISCARDED = "operator.dead_letter_discard"


class Event(Model):
    id = BigAutoField()
    call_id = CharField(max_length=64)
    at = DateTimeField(default=utcnow)
    kind = CharField(max_length=40)
    stage = CharField(null=True, max_length=16)
    operator = CharField(null=True, max_length=64)  # who asked (a person's name, "token", "sweeper", "cli")
    worker = CharField(null=True, max_length=128)  # host/pid of the process that recorded it
    detail = JSONField(null=True)  # what else is worth knowing: attempt, error, fal request id…

    class Meta:
        database = database
        table_name = "callreel_events"
        indexes = ((("call_id", "at"), False),)


_WORKER: str | None = None


def worker_name() -> str:
    """``host/pid`` of this process (computed per process: a forked worker has its own pid)."""
    global _WORKER
    pid = os.getpid()
    if _WORKER is None or not _WORKER.endswith(f"/{pid}"):
        _WORKER = f"{socket.gethostname()[:100]}/{pid}"
    return _WORKER


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DETAIL_MAX_CHARS:
        return value[:DETAIL_MAX_CHARS] + "…"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _clip(str(value))


def record(call_id: str | None, kind: str, *, stage: str | None = None, operator: str | None = None, **detail: Any) -> bool:
    """Add one event to ``call_id``'s history; False (and a log line) when it could not be written."""
    if not call_id:
        return False
    try:
        with database.atomic():
            Event.create(
                call_id=str(call_id)[:64],
                kind=kind,
                stage=stage,
                operator=(operator or None) and operator[:64],
                worker=worker_name(),
                detail={k: _clip(v) for k, v in detail.items() if v is not None} or None,
            )
        return True
    except Exception:  # the history describes the work; it never stops it
        log.warning("event %s not recorded", kind, exc_info=True, extra={"call_id": call_id})
        return False


def history(call_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """The call's events, oldest first (the newest ``limit`` of them)."""
    rows = list(Event.select().where(Event.call_id == call_id).order_by(Event.at.desc(), Event.id.desc()).limit(limit))
    rows.reverse()
    return [
        {
            "at": row.at,
            "kind": row.kind,
            "stage": row.stage,
            "operator": row.operator,
            "worker": row.worker,
            "detail": row.detail or {},
        }
        for row in rows
    ]
