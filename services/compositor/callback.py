"""The signed status callback: the host application learns a call's outcome without polling.

When VIDEO_STATUS_CALLBACK_URL is set, every call the compositor finishes
(completed, partial or failed) is POSTed there as JSON, like Twilio's
composition status callbacks. The request carries::

    X-Callreel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The receiver recomputes the HMAC over the raw body with
VIDEO_STATUS_CALLBACK_SECRET, compares in constant time and rejects stale
timestamps (replays). Signing the timestamp with the body is what makes the
replay check trustworthy.

Delivery is best effort: a few quick retries, then a warning in the log. The
call's row is already final, so a receiver that was down can read it from the
database (or the status API) instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from shared.models import Call
from shared.settings import Settings

__all__ = ["SIGNATURE_HEADER", "EVENT_HEADER", "sign", "signature_header", "verify", "status_payload", "send_status"]

log = logging.getLogger("callreel.compositor.callback")

SIGNATURE_HEADER = "X-Callreel-Signature"
EVENT_HEADER = "X-Callreel-Event"
EVENT = "call.video"
ATTEMPTS = 3
TIMEOUT = 10.0
# How old a signed timestamp ``verify`` accepts by default.
TOLERANCE = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance: int = TOLERANCE, now: float | None = None) -> bool:
    """What a receiver does (and what the tests do): check the signature and the timestamp's age."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), fields.get("v1", ""))


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def status_payload(call: Call) -> dict[str, Any]:
    return {
        "event": EVENT,
        "call_id": call.id,
        "video_status": call.video_status,
        "video_url": call.video_url,
        "caller_video_url": call.caller_video_url,
        "callee_video_url": call.callee_video_url,
        "error": call.video_error_message,
        "video_processing_started_at": _iso(call.video_processing_started_at),
        "video_processing_completed_at": _iso(call.video_processing_completed_at),
        "video_processing_duration": call.video_processing_duration,
        "recording_sid": call.recording_sid,
    }


def send_status(call_id: str, settings: Settings) -> bool:
    """POST the call's final state to the callback URL; True when the receiver accepted it."""
    if not settings.video_status_callback_url:
        return False
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        return False
    body = json.dumps(status_payload(call), separators=(",", ":"), sort_keys=True).encode()
    extra = {"call_id": call_id, "stage": "compositor"}
    for attempt in range(1, ATTEMPTS + 1):
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "callreel",
            EVENT_HEADER: EVENT,
            SIGNATURE_HEADER: signature_header(settings.video_status_callback_secret, body),
        }
        try:
            response = httpx.post(settings.video_status_callback_url, content=body, headers=headers, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
        else:
            if response.is_success:
                log.info("status callback accepted (%s)", response.status_code, extra=extra)
                return True
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this request; sending it again will not help
        if attempt < ATTEMPTS:
            time.sleep(2 ** (attempt - 1))
    log.warning("status callback not delivered: %s", problem, extra=extra)
    return False
