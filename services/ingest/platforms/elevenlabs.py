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

What is mapped: ``post_call_audio`` is the only delivery that carries the
recording, so it makes the call: ``data.conversation_id`` -> the external id,
``data.full_audio`` -> the recording (stored as it came, an MP3), the agent on
``ELEVENLABS_AGENT_CHANNEL``. ElevenLabs documents it only as "audio of the
full conversation", not as one party per channel: expect one mixed channel.
Such a call goes through the audio stage's usual check and fails there with
its clear "1 channel (mono)" reason, visible in the console; a stereo file
would go through. Splitting a mixed recording by the transcript's turns is not
done (docs/platforms.md). ``post_call_transcription`` carries no audio and
``call_initiation_failure`` no call: both are acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from .common import BadPayload, Ignored, Platform, PlatformCall, hmac_hex, obj, signed_fields, text

__all__ = ["PLATFORM", "verify", "parse", "sign", "TOLERANCE", "MAX_AUDIO_BYTES"]

SIGNATURE_HEADER = "ElevenLabs-Signature"
TOLERANCE = 30 * 60  # seconds, as the SDK's construct_event
AHEAD = 5 * 60  # a timestamp from the future is a clock far off, or a forged one
#: The body of post_call_audio holds the whole recording in base64: 4/3 of its size, plus a little JSON.
#: 64 MiB is about 48 MB of MP3, most of an hour at 128 kbit/s; the body, its JSON and the decoded
#: audio are all in memory for the request, so this is not RECORDING_MAX_BYTES' 500 MB.
MAX_AUDIO_BYTES = 64 * 1024 * 1024


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


def parse(payload: Any, agent_channel: str) -> PlatformCall | Ignored:
    payload = obj(payload)
    kind = text(payload.get("type"))
    if kind is None:
        raise BadPayload("an ElevenLabs webhook is {\"type\": …, \"data\": {…}}")
    if kind == "post_call_transcription":
        return Ignored("the transcription webhook carries no recording: the call is made from post_call_audio")
    if kind != "post_call_audio":
        return Ignored(f"ElevenLabs {kind} webhooks need no action")
    data = obj(payload.get("data"))
    conversation = text(data.get("conversation_id"))
    encoded = data.get("full_audio")
    if conversation is None or not isinstance(encoded, str) or not encoded:
        raise BadPayload("post_call_audio without data.conversation_id and data.full_audio")
    try:
        audio = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadPayload("data.full_audio is not base64") from None
    if not audio:
        raise BadPayload("data.full_audio is empty")
    return PlatformCall(external_id=conversation, audio=audio, audio_format="mp3", agent_channel=agent_channel)


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
