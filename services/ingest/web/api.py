"""The status API, for the host application and operators: ``GET /calls/{callId}`` and friends.

Protected by a bearer token (``CALLREEL_API_TOKEN``), which auth.py checks
before any responder here runs; with no token configured the API is off and
refuses every request. Videos are private objects: the answer carries
presigned URLs that expire (``PRESIGNED_URL_EXPIRY``), never the bucket's own
URLs.

Also here: ``GET /calls`` (the list, keyset-paginated: see listing.py),
``POST /calls/{callId}/retry``, and how a call is presented: ``PATCH
/calls/{callId}`` (names, layout, captions; the rules in presentation.py) and
``PUT /calls/{callId}/avatars/{side}`` (an image, checked and stored). One call's view is ``shared.callview``'s, the
one the operator page (pages.py) and ``callreel status`` show.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import falcon

from shared import keys
from shared.avatars import AVATAR_MAX_BYTES, AvatarError, store_avatar
from shared.calls import processing_seconds
from shared.callview import as_json, call_duration, call_view
from shared.models import SIDES, Call, utcnow
from shared.operators import TOKEN_OPERATOR
from shared.retry import RetryError, retry_call
from shared.settings import get_settings
from shared.storage import Storage

from .backlog import BacklogReader
from .listing import parse_list_query, read_page
from .media import video_link
from .presentation import check_patch, read_patch

__all__ = [
    "CallResource",
    "AvatarResource",
    "CallListResource",
    "RetryResource",
    "BacklogResource",
    "find_call",
    "retry",
    "list_row",
]

log = logging.getLogger("callreel.ingest")


class CallResource:
    """``GET /calls/{callId}``: one call, its stage timeline, segments and video URLs; ``PATCH``: how it is presented."""

    def __init__(self, storage: Callable[[], Storage]) -> None:
        self._storage = storage

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        call = find_call(call_id)
        resp.media = as_json(call_view(call, video_link(self._storage())))
        resp.set_header("Cache-Control", "no-store")  # it holds presigned URLs

    def on_patch(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        """The call's own names, layout, captions mode; null clears one (the rules: web/presentation.py)."""
        call = find_call(call_id)
        changes, problems = check_patch(read_patch(req))
        if problems:
            raise falcon.HTTPBadRequest(title="Invalid presentation", description="; ".join(problems))
        Call.update({**{getattr(Call, k): v for k, v in changes.items()}, Call.updated_at: utcnow()}).where(Call.id == call.id).execute()
        resp.media = as_json(call_view(Call.get_by_id(call.id), video_link(self._storage())))
        resp.set_header("Cache-Control", "no-store")


class AvatarResource:
    """``PUT /calls/{callId}/avatars/{side}``: the image as the body (PNG, JPEG or WebP, ≤ 10 MB, ≥ 256 px), checked and stored."""

    def __init__(self, storage: Callable[[], Storage]) -> None:
        self._storage = storage

    def on_put(self, req: falcon.Request, resp: falcon.Response, call_id: str, side: str) -> None:
        call = find_call(call_id)
        if side not in SIDES:
            raise falcon.HTTPNotFound(title="No such side", description=f"{side!r}: the sides are caller and callee.")
        if req.content_length is not None and req.content_length > AVATAR_MAX_BYTES:
            raise falcon.HTTPContentTooLarge(description=f"The image is larger than {AVATAR_MAX_BYTES} bytes (10 MB).")
        data = req.bounded_stream.read(AVATAR_MAX_BYTES + 1)
        storage = self._storage()
        try:
            key = store_avatar(call.id, side, data, get_settings(), storage)
        except AvatarError as exc:
            raise falcon.HTTPBadRequest(title="Invalid avatar", description="; ".join(exc.problems)) from None
        Call.update({getattr(Call, f"{side}_avatar_url"): key, Call.updated_at: utcnow()}).where(Call.id == call.id).execute()
        resp.media = as_json(call_view(Call.get_by_id(call.id), video_link(storage)))
        resp.set_header("Cache-Control", "no-store")


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


def retry(call_id: str, *, operator: str = TOKEN_OPERATOR) -> str:
    """Retry a call; 409 when it cannot be (still running, nothing to do), 503 when the broker is down."""
    try:
        return retry_call(call_id, operator=operator)
    except RetryError as exc:
        raise falcon.HTTPConflict(title="Cannot retry", description=str(exc)) from None
    except dramatiq.errors.BrokerError as exc:
        log.error("retry of %s not sent: %s", call_id, exc, extra={"call_id": call_id})
        raise falcon.HTTPServiceUnavailable(
            title="Broker unavailable", description="The retry could not be sent to the queue; try again shortly.", retry_after=5
        ) from None


def list_row(call: Call, now: dt.datetime) -> dict[str, Any]:
    """One row of the call list: what a person scans for."""
    return {
        "id": call.id,
        "source": call.source,
        "external_id": call.external_id,
        "status": call.video_status,
        "stage": call.stage,
        "recording_sid": call.recording_sid,
        "duration": call_duration(call),
        "created_at": as_json(call.created_at),
        "age_seconds": int((now - call.created_at).total_seconds()) if call.created_at else None,
        "processing_seconds": processing_seconds(call, now),
        "error": call.video_error_message,
    }
