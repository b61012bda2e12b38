"""ElevenLabs Agents: the post-call webhooks, at ``POST /webhooks/elevenlabs``.

ElevenLabs sends ``{"type": …, "event_timestamp": …, "data": {…}}``
(https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks) of three
types: ``post_call_transcription`` (transcript, analysis, metadata),
``post_call_audio`` (``data.full_audio``: the whole conversation's audio,
base64-encoded MP3) and ``call_initiation_failure``.

Signature (same page, "Authentication"; the official SDK's
``webhooks.construct_event``): the ``ElevenLabs-Signature`` header is
``t=<unix seconds>,v0=<hex>``, the HMAC-SHA256 of ``f"{t}.{raw body}"`` keyed
with the webhook's shared secret (``ELEVENLABS_WEBHOOK_SECRET``); a timestamp
older than 30 minutes is refused (and, here, one more than 5 minutes ahead).

What is mapped: the two webhooks of a conversation are its two halves, paired
by ``data.conversation_id`` (the external id) in services/ingest/platforms/pairing.py,
whatever their order, each possibly delivered twice:

- ``post_call_audio``: ``data.full_audio`` -> the recording (stored as it came,
  an MP3). ElevenLabs documents it only as "audio of the full conversation":
  one mixed (mono) channel, which the audio stage routes to two channels by the
  transcript's turns (services/audio/route.py); a stereo file is used as it is,
  the agent on ``ELEVENLABS_AGENT_CHANNEL``;
- ``post_call_transcription``: ``data.transcript`` -> the call's supplied
  transcript: each ``agent`` or ``user`` message with text is a turn from its
  ``time_in_call_secs`` to the next message's (the last one to
  ``data.metadata.call_duration_secs``).

``call_initiation_failure`` carries no call: acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from .common import AGENT, CUSTOMER, BadPayload, Ignored, Platform, PlatformCall, hmac_hex, number, obj, signed_fields, text, turn

__all__ = ["PLATFORM", "verify", "parse", "sign", "transcript_turns", "TOLERANCE", "MAX_AUDIO_BYTES", "LAST_TURN"]

SIGNATURE_HEADER = "ElevenLabs-Signature"
TOLERANCE = 30 * 60  # seconds, as the SDK's construct_event
AHEAD = 5 * 60  # a timestamp from the future is a clock far off, or a forged one
#: The body of post_call_audio holds the whole recording in base64: 4/3 of its size, plus a little JSON.
#: 64 MiB is about 48 MB of MP3, most of an hour at 128 kbit/s; the body, its JSON and the decoded
#: audio are all in memory for the request, so this is not RECORDING_MAX_BYTES' 500 MB.
MAX_AUDIO_BYTES = 64 * 1024 * 1024
ROLES = {"agent": AGENT, "user": CUSTOMER}
#: The last message's length when the call's duration is not given (the audio stage routes it to the audio's end anyway).
LAST_TURN = 5.0


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header ElevenLabs sends for ``body`` (tests build deliveries with it)."""
    return f"t={timestamp},v0={hmac_hex(secret.encode(), str(timestamp).encode() + b'.' + body)}"


def verify(secret: str, headers: Mapping[str, str | None], body: bytes, now: float) -> str | None:
    header = headers.get(SIGNATURE_HEADER) or ""
    if not header.strip():
        return f"no {SIGNATURE_HEADER} header"
    fields = signed_fields(header)
    stamp, signature = fields.get("t", ""), fields.get("v0", "")
    if not stamp.isdigit() or not signature:
        return f"{SIGNATURE_HEADER} is not t=<timestamp>,v0=<hmac>"
    if now - int(stamp) > TOLERANCE or int(stamp) - now > AHEAD:
        return f"{SIGNATURE_HEADER} timestamp is outside the 30-minute tolerance (a replay, or a clock far off)"
    expected = hmac_hex(secret.encode(), stamp.encode() + b"." + body)
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        return f"{SIGNATURE_HEADER} does not match this body and ELEVENLABS_WEBHOOK_SECRET"
    return None


def transcript_turns(messages: Any, duration: float | None) -> list[dict[str, Any]]:
    """ElevenLabs' ``transcript`` as turns: a message with text lasts until the next one starts.

    ElevenLabs gives each message only its start (``time_in_call_secs``). Messages
    without text (tool calls) or of another role are left out; a message that
    starts where the next does gets no room and is left out too.
    """
    found: list[tuple[float, str, str]] = []
    for item in messages if isinstance(messages, list) else []:
        item = obj(item)
        side, words, start = ROLES.get(str(item.get("role"))), text(item.get("message")), number(item.get("time_in_call_secs"))
        if side is not None and words is not None and start is not None and start >= 0:
            found.append((start, side, words))
    found.sort(key=lambda entry: entry[0])
    turns = []
    for index, (start, side, words) in enumerate(found):
        later = [s for s, _, _ in found[index + 1 :] if s > start]
        end = later[0] if later else (duration if duration is not None and duration > start else start + LAST_TURN)
        if index + 1 < len(found) and found[index + 1][0] == start:
            continue  # the next message starts at the same second: it takes the time
        turns.append(turn(side, start, end, words))
    return turns


def parse(payload: Any, agent_channel: str) -> PlatformCall | Ignored:
    payload = obj(payload)
    kind = text(payload.get("type"))
    if kind is None:
        raise BadPayload("an ElevenLabs webhook is {\"type\": …, \"data\": {…}}")
    if kind not in ("post_call_transcription", "post_call_audio"):
        return Ignored(f"ElevenLabs {kind} webhooks need no action")
    data = obj(payload.get("data"))
    conversation = text(data.get("conversation_id"))
    if conversation is None:
        raise BadPayload(f"{kind} without data.conversation_id")
    if kind == "post_call_transcription":
        duration = number(obj(data.get("metadata")).get("call_duration_secs"))
        turns = transcript_turns(data.get("transcript"), duration)
        if not turns:
            return Ignored("post_call_transcription with no agent or user message: nothing to split the audio by")
        return PlatformCall(external_id=conversation, turns=turns, agent_channel=agent_channel, half="transcript")
    encoded = data.get("full_audio")
    if not isinstance(encoded, str) or not encoded:
        raise BadPayload("post_call_audio without data.full_audio")
    try:
        audio = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadPayload("data.full_audio is not base64") from None
    if not audio:
        raise BadPayload("data.full_audio is empty")
    return PlatformCall(external_id=conversation, audio=audio, audio_format="mp3", agent_channel=agent_channel, half="audio")


PLATFORM = Platform(
    name="elevenlabs",
    secret_env="ELEVENLABS_WEBHOOK_SECRET",
    secret_attr="elevenlabs_webhook_secret",
    channel_attr="elevenlabs_agent_channel",
    signature_headers=(SIGNATURE_HEADER,),
    verify=verify,
    parse=parse,
    max_body_bytes=MAX_AUDIO_BYTES,
    docs="https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks",
)
