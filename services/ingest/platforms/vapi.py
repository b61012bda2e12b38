"""Vapi: the ``end-of-call-report`` server message, at ``POST /webhooks/vapi``.

Vapi POSTs every server message to the assistant's (or phone number's) Server
URL as ``{"message": {"type": …, "call": {…}, "artifact": {…}}}``; only
``end-of-call-report`` matters here, every other type is acknowledged and
ignored. Vapi waits for the answer (about 20 s) and does not retry by default,
so the call is stored before the answer and nothing slow happens in between.

Authentication (https://docs.vapi.ai/server-url/server-authentication), with
one secret, ``VAPI_WEBHOOK_SECRET``, in the credential Vapi sends:

- a Bearer Token credential with header ``X-Vapi-Secret`` and no prefix (the
  legacy ``server.secret``), or the default ``Authorization: Bearer <secret>``:
  the header must equal the secret;
- an HMAC credential (algorithm sha256, Vapi's defaults: signature in
  ``x-signature``, timestamp in ``x-timestamp``, payload ``{timestamp}.{body}``,
  hex, an optional ``sha256=`` prefix; base64 is accepted too): the HMAC of the
  raw body must match and the timestamp be within ``TOLERANCE`` of now (the
  replay protection the static header schemes lack).

What is mapped (https://docs.vapi.ai/server-url/events, "End of Call Report";
the Artifact schema of https://docs.vapi.ai/api-reference):

- ``message.call.id`` -> the external id;
- the stereo recording: ``message.artifact.recording.stereoUrl``, or the older
  ``artifact.stereoRecordingUrl`` / ``message.stereoRecordingUrl``. Vapi keeps
  recordings in private storage now
  (https://docs.vapi.ai/assistants/retrieve-call-artifacts): with ``VAPI_API_KEY``
  set, the recording is fetched from ``https://api.vapi.ai/call/{id}/stereo-recording``
  with that key (a 302 to a short-lived signed URL); without it, the URL in the
  report is fetched as it is (public links, your own bucket);
- ``message.artifact.messages``: ``bot``/``assistant`` turns are the agent's,
  ``user`` turns the customer's, each from ``secondsFromStart`` for
  ``endTime - time`` (both epoch milliseconds); system and tool messages are
  left out.

Which channel of Vapi's stereo file is the assistant is not stated in Vapi's
documentation (the recording endpoint says only "customer + assistant on
separate channels"): ``VAPI_AGENT_CHANNEL`` says it (docs/platforms.md).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .common import AGENT, CUSTOMER, BadPayload, Ignored, Platform, PlatformCall, hmac_hex, number, obj, text, turn

__all__ = ["PLATFORM", "verify", "parse", "api_recording_url", "TOLERANCE"]

SECRET_HEADER = "X-Vapi-Secret"
AUTHORIZATION = "Authorization"
SIGNATURE_HEADER = "x-signature"
TIMESTAMP_HEADER = "x-timestamp"
#: Seconds an HMAC-signed message may be old (or early: clocks differ) before it is a replay.
TOLERANCE = 300
ROLES = {"bot": AGENT, "assistant": AGENT, "user": CUSTOMER}
API_BASE = "https://api.vapi.ai"


def _equal(given: str | None, secret: str) -> bool:
    return given is not None and hmac.compare_digest(given.strip().encode(), secret.encode())


def _timestamp_seconds(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    # Vapi's docs do not give the unit: a value past the year 33658 in seconds is milliseconds.
    return value / 1000 if value > 1e12 else value


def _hmac_matches(secret: str, signature: str, timestamp: str, body: bytes) -> bool:
    signature = signature.strip().removeprefix("sha256=")
    digest = hmac_hex(secret.encode(), timestamp.encode() + b"." + body)
    if hmac.compare_digest(signature.lower().encode(), digest.encode()):
        return True
    try:  # signatureEncoding "base64"
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(raw, bytes.fromhex(digest))


def verify(secret: str, headers: Mapping[str, str | None], body: bytes, now: float) -> str | None:
    """None when the request carries Vapi's credential for ``secret``; otherwise why not."""
    signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if signature:
        when = _timestamp_seconds(timestamp or "")
        if when is None:
            return f"{SIGNATURE_HEADER} without a readable {TIMESTAMP_HEADER}"
        if abs(now - when) > TOLERANCE:
            return f"{TIMESTAMP_HEADER} is more than {TOLERANCE} s from now (a replay, or a clock far off)"
        if not _hmac_matches(secret, signature, (timestamp or "").strip(), body):
            return f"{SIGNATURE_HEADER} does not match this body"
        return None
    if headers.get(SECRET_HEADER) is not None:
        return None if _equal(headers.get(SECRET_HEADER), secret) else f"{SECRET_HEADER} is not VAPI_WEBHOOK_SECRET"
    scheme, _, token = (headers.get(AUTHORIZATION) or "").partition(" ")
    if scheme.lower() == "bearer":
        return None if _equal(token, secret) else "the Bearer token is not VAPI_WEBHOOK_SECRET"
    return f"no Vapi credential ({SECRET_HEADER}, Authorization: Bearer, or an HMAC {SIGNATURE_HEADER})"


def api_recording_url(call_id: str) -> str:
    """Vapi's authenticated download of a call's stereo recording."""
    return f"{API_BASE}/call/{quote(call_id, safe='')}/stereo-recording"


def _turns(messages: Any) -> list[dict[str, Any]]:
    turns = []
    for item in messages if isinstance(messages, list) else []:
        item = obj(item)
        side, words = ROLES.get(str(item.get("role"))), text(item.get("message"))
        start, began, ended = number(item.get("secondsFromStart")), number(item.get("time")), number(item.get("endTime"))
        if side is None or words is None or start is None or start < 0 or began is None or ended is None:
            continue
        end = start + (ended - began) / 1000
        if end > start:
            turns.append(turn(side, start, end, words))
    return turns


def parse(payload: Any, agent_channel: str) -> PlatformCall | Ignored:
    message = obj(obj(payload).get("message"))
    kind = text(message.get("type"))
    if kind is None:
        raise BadPayload("a Vapi server message is {\"message\": {\"type\": …}}")
    if kind != "end-of-call-report":
        return Ignored(f"Vapi {kind} messages need no action")
    call_id = text(obj(message.get("call")).get("id"))
    if call_id is None:
        raise BadPayload("end-of-call-report without message.call.id")
    artifact = obj(message.get("artifact"))
    stereo = (
        text(obj(artifact.get("recording")).get("stereoUrl"))
        or text(artifact.get("stereoRecordingUrl"))
        or text(message.get("stereoRecordingUrl"))
    )
    if stereo is None:
        return Ignored("this report has no stereo recording (recording is off for the assistant, or the call never connected)")
    messages = artifact.get("messages") if "messages" in artifact else message.get("messages")
    return PlatformCall(external_id=call_id, recording_url=stereo, turns=_turns(messages), agent_channel=agent_channel)


PLATFORM = Platform(
    name="vapi",
    secret_env="VAPI_WEBHOOK_SECRET",
    secret_attr="vapi_webhook_secret",
    channel_attr="vapi_agent_channel",
    signature_headers=(SECRET_HEADER, AUTHORIZATION, SIGNATURE_HEADER, TIMESTAMP_HEADER),
    verify=verify,
    parse=parse,
    docs="https://docs.vapi.ai/server-url/server-authentication",
    api_key_attr="vapi_api_key",
    api_recording_url=api_recording_url,
    recording_hosts_attr="vapi_recording_hosts",
)
