"""What every voice-agent platform adapter shares: the shape of a mapped call, and the HMAC helpers.

An adapter (vapi.py, retell.py, elevenlabs.py) is two pure functions over the
raw request, so it is tested without a server:

- ``verify(secret, headers, body, now)`` -> ``None`` or the reason the request
  is refused (unsigned, mis-signed, too old). It reads only the raw body: a
  signature is over bytes, never over a re-serialised JSON object.
- ``parse(payload, agent_channel)`` -> a :class:`PlatformCall` to submit, or an
  :class:`Ignored` saying why this delivery needs no action (another event
  type, a call that never connected). Raises :class:`BadPayload` for a
  delivery that claims to be an end-of-call report but cannot be read.

The web resource (webhook.py) does the rest the same way for every platform.
Adding a platform is one module with these two functions and a
:class:`Platform` record, plus its test file.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AGENT",
    "CUSTOMER",
    "Platform",
    "PlatformCall",
    "Ignored",
    "BadPayload",
    "turn",
    "hmac_hex",
    "signed_fields",
    "number",
    "text",
    "obj",
]

# The agent is the AI voice: callreel's "caller" side (left panel, CALLER_LABEL);
# the customer is the "callee". The roles are the call's, not the dialling direction.
AGENT = "caller"
CUSTOMER = "callee"


@dataclass(frozen=True)
class PlatformCall:
    """One platform's end-of-call report, reduced to what callreel needs."""

    external_id: str  # the platform's call id: the idempotency key with the source
    recording_url: str | None = None  # https URL of the stereo recording
    recording_auth: str | None = None  # an Authorization header value ("Bearer …") for the download
    audio: bytes | None = None  # the recording itself, when the platform sends the bytes
    audio_format: str = "mp3"
    turns: list[dict[str, Any]] = field(default_factory=list)  # shared/transcript.py's JSON turns
    agent_channel: str = "left"
    # One of two webhooks that together make the call ("audio" | "transcript": ElevenLabs):
    # kept until its pair arrives (pairing.py) instead of submitted at once.
    half: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A delivery acknowledged (200) and not acted on, and why."""

    reason: str


class BadPayload(ValueError):
    """The body is signed but is not the report it says it is (400, nothing stored)."""


@dataclass(frozen=True)
class Platform:
    """One adapter as the web resource and the settings see it."""

    name: str  # the call's source, and the path /webhooks/<name>
    secret_env: str  # the setting holding the signing secret; empty = platform disabled
    secret_attr: str
    channel_attr: str  # the setting naming the agent's channel
    signature_headers: tuple[str, ...]
    verify: Callable[[str, Mapping[str, str | None], bytes, float], str | None]
    parse: Callable[[Any, str], PlatformCall | Ignored]
    recording_hosts_attr: str | None = None  # the setting listing the hosts its recording URLs may point at
    max_body_bytes: int = 8 * 1024 * 1024
    docs: str = ""
    # Optional: the platform's own API key, used to fetch recordings that are not public.
    api_key_attr: str | None = None
    # With that key: the platform's authenticated download URL for a call id (instead of the report's URL).
    api_recording_url: Callable[[str], str] | None = None


def turn(side: str, start: float, end: float, words: str) -> dict[str, Any]:
    """One turn in shared/transcript.py's JSON shape."""
    return {"speaker": side, "start": round(start, 3), "end": round(end, 3), "text": words}


def hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_fields(header: str) -> dict[str, str]:
    """``t=1,v0=ab`` -> ``{"t": "1", "v0": "ab"}`` (the first value of each name wins)."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in fields:
            fields[name] = value.strip()
    return fields


def number(value: Any) -> float | None:
    """A finite JSON number, or None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def text(value: Any) -> str | None:
    """A non-blank string, stripped, or None."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one in place of anything else."""
    return value if isinstance(value, dict) else {}
