"""The status API, for the host application and operators: ``GET /calls/{callId}``.

Protected by a bearer token (``CALLREEL_API_TOKEN``); with no token configured
the API is off and refuses every request. Videos are private objects: the
answer carries presigned URLs that expire (``PRESIGNED_URL_EXPIRY``), never
the bucket's own URLs.

The operator page and the ``GET /calls`` list and retry endpoints are meant to
live here too, on the same ``TokenAuth``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from typing import Any, Callable

import falcon

from shared import keys
from shared.models import SIDES, STAGES, Call
from shared.storage import Storage

__all__ = ["TokenAuth", "CallResource", "call_view", "presigned_video"]


class TokenAuth:
    """``Authorization: Bearer <CALLREEL_API_TOKEN>``, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def check(self, req: falcon.Request) -> None:
        if not self._token:
            raise falcon.HTTPForbidden(title="API disabled", description="Set CALLREEL_API_TOKEN to use the status API.")
        scheme, _, credentials = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self._token):
            raise falcon.HTTPUnauthorized(
                title="Authentication required",
                description="Send Authorization: Bearer <CALLREEL_API_TOKEN>.",
                challenges=['Bearer realm="callreel"'],
            )


class CallResource:
    def __init__(self, auth: TokenAuth, storage: Callable[[], Storage]) -> None:
        self.auth = auth
        self._storage = storage

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        self.auth.check(req)
        try:
            keys.validate_call_id(call_id)
        except keys.InvalidCallId as exc:
            raise falcon.HTTPBadRequest(title="Invalid call id", description=str(exc)) from None
        call = Call.get_or_none(Call.id == call_id)
        if call is None:
            raise falcon.HTTPNotFound(title="No such call", description=f"No call {call_id}.")
        resp.media = call_view(call, self._storage())
        resp.set_header("Cache-Control", "no-store")  # it holds presigned URLs


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end and end >= start else None


def presigned_video(storage: Storage, call_id: str, stored_url: str | None) -> str | None:
    """A presigned URL for a video of this call whose stored URL the database holds.

    Only keys of this very call's videos are ever presigned, whatever the
    column holds.
    """
    if not stored_url:
        return None
    pattern = re.compile(rf"(videos/{re.escape(call_id)}(?:-(?:caller|callee)(?:-\d{{3}})?)?\.mp4)$")
    match = pattern.search(stored_url)
    return storage.presigned_url(match.group(1)) if match else None


def call_view(call: Call, storage: Storage) -> dict[str, Any]:
    """Everything a person or the host app asks about one call."""
    stages = {}
    for stage in STAGES:
        started, finished = getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at")
        stages[stage] = {
            "started_at": _iso(started),
            "finished_at": _iso(finished),
            "seconds": _seconds(started, finished),
            "attempts": getattr(call, f"{stage}_attempts") or 0,
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
    return {
        "id": call.id,
        "status": call.video_status,
        "stage": call.stage,
        "error": call.video_error_message,
        "video_url": presigned_video(storage, call.id, call.video_url),
        "sides": sides,
        "stages": stages,
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
