"""The signed status callback: the host application learns a call's outcome without polling.

When VIDEO_STATUS_CALLBACK_URL is set, every call the compositor finishes
(completed, partial or failed) is POSTed there as JSON, like Twilio's
composition status callbacks. The request carries::

    X-Callreel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

    X-Callreel-Event-Id: <the payload's event_id>

The receiver recomputes the HMAC over the raw body with
VIDEO_STATUS_CALLBACK_SECRET (32 bytes or more, checked at start), compares in
constant time and rejects stale timestamps (replays). Signing the timestamp
with the body is what makes the replay check trustworthy. Each delivery has
its own ``event_id``, inside the signed body and the same on every retry of
that delivery: a receiver that got a retry (its answer was lost) or a replay
within the tolerance de-duplicates on it. :func:`verify` is the reference
check and fails closed: any header that is not exactly ``t=<digits>,v1=<64
hex>`` is refused, never an exception.

Delivery is best effort: a few quick retries (1 s, then 2 s; a 429's
Retry-After, up to ``MAX_RETRY_AFTER``), then a warning in the log. The call's
row is already final, so a receiver that was down can read it from the
database (or the status API) instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any

import httpx

from shared.models import Call, TranscriptStatus
from shared.settings import Settings

__all__ = ["SIGNATURE_HEADER", "EVENT_HEADER", "EVENT_ID_HEADER", "sign", "signature_header", "verify", "status_payload", "send_status"]

log = logging.getLogger("callreel.compositor.callback")

SIGNATURE_HEADER = "X-Callreel-Signature"
EVENT_HEADER = "X-Callreel-Event"
EVENT_ID_HEADER = "X-Callreel-Event-Id"
EVENT = "call.video"
ATTEMPTS = 3
#: The longest wait a receiver's Retry-After gets: the compositor's thread is held meanwhile.
MAX_RETRY_AFTER = 30
TIMEOUT = 10.0
# How old a signed timestamp ``verify`` accepts by default.
TOLERANCE = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


_HEADER_RE = re.compile(r"t=([0-9]{1,12}),v1=([0-9a-f]{64})")


def verify(secret: str, header: object, body: bytes, *, tolerance: int = TOLERANCE, now: float | None = None) -> bool:
    """What a receiver does (and what the tests do): check the signature and the timestamp's age.

    Fails closed: an empty secret, a missing header, or one not exactly of the
    form this module sends (a repeated field, stray blanks, non-hex) is False,
    never an exception a receiver might turn into an accept.
    """
    if not secret or not isinstance(header, str) or not isinstance(body, bytes):
        return False
    match = _HEADER_RE.fullmatch(header)
    if match is None:
        return False
    timestamp, signature = int(match.group(1)), match.group(2)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode())


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def status_payload(call: Call, event_id: str) -> dict[str, Any]:
    return {
        "event": EVENT,
        "event_id": event_id,
        "call_id": call.id,
        "video_status": call.video_status,
        "video_url": call.video_url,
        "caller_video_url": call.caller_video_url,
        "callee_video_url": call.callee_video_url,
        "poster_url": call.poster_url,
        "error": call.video_error_message,
        "video_processing_started_at": _iso(call.video_processing_started_at),
        "video_processing_completed_at": _iso(call.video_processing_completed_at),
        "video_processing_duration": call.video_processing_duration,
        "recording_sid": call.recording_sid,
        # Captions never fail a video: a call can be completed with its transcript failed (the reason in transcript_error).
        "transcript_status": call.transcript_status or TranscriptStatus.NONE,
        "transcript_error": call.transcript_error,
        "transcript_url": call.transcript_url,
        "captions_url": call.captions_url,
    }


def _retry_after(response: httpx.Response, default: int) -> int:
    """A 429's Retry-After in seconds, capped at MAX_RETRY_AFTER; ``default`` when absent or a date."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw.isdigit():
        return default
    return min(int(raw), MAX_RETRY_AFTER)


def send_status(call_id: str, settings: Settings) -> bool:
    """POST the call's final state to the callback URL; True when the receiver accepted it."""
    if not settings.video_status_callback_url:
        return False
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        return False
    event_id = uuid.uuid4().hex  # one per delivery, the same on its retries
    body = json.dumps(status_payload(call, event_id), separators=(",", ":"), sort_keys=True).encode()
    extra = {"call_id": call_id, "stage": "compositor"}
    for attempt in range(1, ATTEMPTS + 1):
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "callreel",
            EVENT_HEADER: EVENT,
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: signature_header(settings.video_status_callback_secret, body),
        }
        wait = 2 ** (attempt - 1)
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
            if response.status_code == 429:
                wait = _retry_after(response, wait)
        if attempt < ATTEMPTS:
            time.sleep(wait)
    log.warning("status callback not delivered: %s", problem, extra=extra)
    return False
