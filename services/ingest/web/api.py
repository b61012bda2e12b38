"""The status API, for the host application and operators: ``GET /calls/{callId}`` and friends.

Protected by a bearer token (``CALLREEL_API_TOKEN``, checked by auth.py before
any responder here runs); with no token configured the API is off and refuses
every request. Videos are private objects: the
answer carries presigned URLs that expire (``PRESIGNED_URL_EXPIRY``), never
the bucket's own URLs.

Also here: ``GET /calls`` (the list, keyset-paginated: see listing.py) and
``POST /calls/{callId}/retry``. The operator page (pages.py) reads the same
views through a session cookie instead of the bearer token.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

import dramatiq
import falcon

from shared import keys
from shared.calls import call_segments, processing_seconds, stage_timeline
from shared.models import SIDES, Call, utcnow
from shared.retry import RetryError, retry_call
from shared.storage import Storage

from .backlog import BacklogReader
from .listing import parse_list_query, read_page
from .media import video_key_in, video_src

__all__ = [
    "CallResource",
    "CallListResource",
    "RetryResource",
    "BacklogResource",
    "find_call",
    "retry",
    "call_view",
    "list_row",
    "presigned_video",
]

log = logging.getLogger("callreel.ingest")


class CallResource:
    """``GET /calls/{callId}``: one call, its stage timeline, segments and video URLs."""

    def __init__(self, storage: Callable[[], Storage]) -> None:
        self._storage = storage

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        call = find_call(call_id)
        resp.media = call_view(call, self._storage())
        resp.set_header("Cache-Control", "no-store")  # it holds presigned URLs


class CallListResource:
    """``GET /calls?status=&stage=&q=&limit=&cursor=``: calls newest first, a page at a time."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = read_page(parse_list_query(req.params))
        now = utcnow()
        resp.media = {"calls": [list_row(call, now) for call in page.calls], "next_cursor": page.next_cursor, "limit": page.query.limit}
        resp.set_header("Cache-Control", "no-store")


class RetryResource:
    """``POST /calls/{callId}/retry``: what ``callreel retry`` does (``shared.retry.retry_call``)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        stage = retry(find_call(call_id).id)
        call = Call.get_by_id(call_id)
        resp.status = falcon.HTTP_202
        resp.media = {"id": call.id, "retried_from": stage, "status": call.video_status, "stage": call.stage}


class BacklogResource:
    """``GET /backlog``: per stage, the calls in it and (with the management API) its queue's messages."""

    def __init__(self, backlog: BacklogReader) -> None:
        self.backlog = backlog

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.backlog.read().as_dict()
        resp.set_header("Cache-Control", "no-store")


def find_call(call_id: str) -> Call:
    """The call ``call_id`` names: 400 if it is not a CallSid, 404 if there is none."""
    try:
        keys.validate_call_id(call_id)
    except keys.InvalidCallId as exc:
        raise falcon.HTTPBadRequest(title="Invalid call id", description=str(exc)) from None
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        raise falcon.HTTPNotFound(title="No such call", description=f"No call {call_id}.")
    return call


def retry(call_id: str) -> str:
    """Retry a call; 409 when it cannot be (still running, nothing to do), 503 when the broker is down."""
    try:
        return retry_call(call_id)
    except RetryError as exc:
        raise falcon.HTTPConflict(title="Cannot retry", description=str(exc)) from None
    except dramatiq.errors.BrokerError as exc:
        log.error("retry of %s not sent: %s", call_id, exc, extra={"call_id": call_id})
        raise falcon.HTTPServiceUnavailable(
            title="Broker unavailable", description="The retry could not be sent to the queue; try again shortly.", retry_after=5
        ) from None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def presigned_video(storage: Storage, call_id: str, stored_url: str | None) -> str | None:
    """A URL to play a video of this call whose stored URL the database holds.

    Only keys of this very call's videos are ever presigned, whatever the
    column holds.
    """
    return video_src(storage, video_key_in(call_id, stored_url))


def list_row(call: Call, now: dt.datetime) -> dict[str, Any]:
    """One row of the call list: what a person scans for."""
    return {
        "id": call.id,
        "status": call.video_status,
        "stage": call.stage,
        "recording_sid": call.recording_sid,
        "duration": call.audio_duration if call.audio_duration is not None else call.recording_duration,
        "created_at": _iso(call.created_at),
        "age_seconds": int((now - call.created_at).total_seconds()) if call.created_at else None,
        "processing_seconds": processing_seconds(call, now),
        "error": call.video_error_message,
    }


def call_view(call: Call, storage: Storage) -> dict[str, Any]:
    """Everything a person or the host app asks about one call."""
    stages = {
        row["stage"]: {
            "state": row["state"],
            "started_at": _iso(row["started_at"]),
            "finished_at": _iso(row["finished_at"]),
            "seconds": row["seconds"],
            "attempts": row["attempts"],
        }
        for row in stage_timeline(call)
    }
    sides = {
        side: {
            "state": call.side_state(side),
            "error": getattr(call, f"{side}_error"),
            "duration": getattr(call, f"{side}_duration"),
            "video_url": presigned_video(storage, call.id, getattr(call, f"{side}_video_url")),
        }
        for side in SIDES
    }
    segments = [
        {
            **{k: v for k, v in segment.items() if k not in ("video_key", "submitted_at", "finished_at")},
            "submitted_at": _iso(segment["submitted_at"]),
            "finished_at": _iso(segment["finished_at"]),
            "video_url": video_src(storage, segment["video_key"]) if _own(call.id, segment["video_key"]) else None,
        }
        for segment in call_segments(call.id)
    ]
    return {
        "id": call.id,
        "status": call.video_status,
        "stage": call.stage,
        "error": call.video_error_message,
        "video_url": presigned_video(storage, call.id, call.video_url),
        "sides": sides,
        "stages": stages,
        "segments": segments,
        "processing": {
            "started_at": _iso(call.video_processing_started_at),
            "completed_at": _iso(call.video_processing_completed_at),
            "seconds": call.video_processing_duration,
        },
        "recording": {
            "sid": call.recording_sid,
            "duration": call.recording_duration,
            "channels": call.recording_channels,
        },
        "source": call.source,
        "created_at": _iso(call.created_at),
        "updated_at": _iso(call.updated_at),
    }


def _own(call_id: str, key: str | None) -> bool:
    return bool(key) and video_key_in(call_id, key) == key
