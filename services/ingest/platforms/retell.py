"""Retell AI: the ``call_ended`` / ``call_analyzed`` webhook events, at ``POST /webhooks/retell``.

Retell POSTs ``{"event": "call_started"|"call_ended"|"call_analyzed", "call": {…}}``
(https://docs.retellai.com/features/webhook-overview); ``call`` is the Get Call
object. It waits 10 s for a 2xx and retries up to 3 times, so a duplicate
delivery is normal: the second is acknowledged and changes nothing.
``call_ended`` carries the recording and the transcript; ``call_analyzed``
repeats them with the analysis, and makes the call if ``call_ended`` was
lost. ``call_started`` and any other event are acknowledged and ignored.

Signature (https://docs.retellai.com/features/secure-webhook): the
``x-retell-signature`` header is ``v=<unix ms>,d=<hex>``, the HMAC-SHA256 of
the raw body followed by the timestamp, keyed with the Retell API key that
has the webhook badge (``RETELL_API_KEY``), and refused more than five
minutes from now: exactly what ``Retell.verify(body, api_key, signature)``
does in Retell's SDKs (``retell/lib/webhook_auth.py``), written here with
``hmac.compare_digest`` rather than adding the SDK.

What is mapped (``call`` object, https://docs.retellai.com/api-references/get-call):

- ``call.call_id`` -> the external id;
- ``call.recording_multi_channel_url`` ("each party's audio stored in a
  separate channel"; the scrubbed one when only that is present) -> the
  recording. Retell's links are signed and expire, which is why the call is
  stored and its download queued at once;
- ``call.transcript_object``: ``agent`` utterances are the agent's, ``user``
  utterances the customer's, each from its first word's ``start`` to its last
  word's ``end`` (seconds of the recording).

Retell's documentation does not say which channel of the multi-channel file
is the agent: ``RETELL_AGENT_CHANNEL`` says it (docs/platforms.md).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

from .common import AGENT, CUSTOMER, BadPayload, Ignored, Platform, PlatformCall, hmac_hex, number, obj, text, turn

__all__ = ["PLATFORM", "verify", "parse", "sign", "TOLERANCE_MS"]

SIGNATURE_HEADER = "x-retell-signature"
TOLERANCE_MS = 5 * 60 * 1000  # the SDK's FIVE_MINUTES
EVENTS = ("call_ended", "call_analyzed")
ROLES = {"agent": AGENT, "user": CUSTOMER}
_SIGNATURE = re.compile(r"v=(\d{1,16}),d=([0-9a-fA-F]{64})")


def sign(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """The header Retell sends for ``body`` (tests build deliveries with it)."""
    return f"v={timestamp_ms},d={hmac_hex(api_key.encode(), body + str(timestamp_ms).encode())}"


def verify(secret: str, headers: Mapping[str, str | None], body: bytes, now: float) -> str | None:
    header = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not header:
        return f"no {SIGNATURE_HEADER} header"
    match = _SIGNATURE.fullmatch(header)
    if match is None:
        return f"{SIGNATURE_HEADER} is not v=<timestamp>,d=<hmac>"
    stamp = int(match[1])
    if abs(now * 1000 - stamp) > TOLERANCE_MS:
        return f"{SIGNATURE_HEADER} is more than five minutes from now (a replay, or a clock far off)"
    expected = hmac_hex(secret.encode(), body + match[1].encode())
    if not hmac.compare_digest(match[2].lower().encode(), expected.encode()):
        return f"{SIGNATURE_HEADER} does not match this body and RETELL_API_KEY"
    return None


def _turns(utterances: Any) -> list[dict[str, Any]]:
    turns = []
    for item in utterances if isinstance(utterances, list) else []:
        item = obj(item)
        side, words = ROLES.get(str(item.get("role"))), text(item.get("content"))
        times = [obj(w) for w in item.get("words") or [] if isinstance(w, dict)]
        starts = [s for s in (number(w.get("start")) for w in times) if s is not None]
        ends = [e for e in (number(w.get("end")) for w in times) if e is not None]
        if side is None or words is None or not starts or not ends:
            continue
        start, end = min(starts), max(ends)
        if start >= 0 and end > start:
            turns.append(turn(side, start, end, words))
    return turns


def parse(payload: Any, agent_channel: str) -> PlatformCall | Ignored:
    payload = obj(payload)
    event = text(payload.get("event"))
    if event is None:
        raise BadPayload("a Retell webhook is {\"event\": …, \"call\": {…}}")
    if event not in EVENTS:
        return Ignored(f"Retell {event} events need no action")
    call = obj(payload.get("call") or payload.get("data"))  # "data": the deprecated name of "call"
    call_id = text(call.get("call_id"))
    if call_id is None:
        raise BadPayload(f"{event} without call.call_id")
    url = text(call.get("recording_multi_channel_url")) or text(call.get("scrubbed_recording_multi_channel_url"))
    if url is None:
        return Ignored(f"{event} has no recording_multi_channel_url (the call did not connect, or recording is off)")
    return PlatformCall(external_id=call_id, recording_url=url, turns=_turns(call.get("transcript_object")), agent_channel=agent_channel)


PLATFORM = Platform(
    name="retell",
    secret_env="RETELL_API_KEY",
    secret_attr="retell_api_key",
    channel_attr="retell_agent_channel",
    signature_headers=(SIGNATURE_HEADER,),
    verify=verify,
    parse=parse,
    docs="https://docs.retellai.com/features/secure-webhook",
    recording_hosts_attr="retell_recording_hosts",
)
