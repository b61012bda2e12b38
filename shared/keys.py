"""Object keys and the validation of the ids that go into them.

A call id reaches keys and file paths, so it is checked against Twilio's CallSid
format before it is used anywhere: nothing like ``../`` can get through.
"""

from __future__ import annotations

import re
import uuid

__all__ = [
    "chunk_sound_key",
    "InvalidCallId",
    "validate_call_id",
    "new_call_id",
    "recording_key",
    "RECORDING_FORMATS",
    "side_audio_key",
    "segment_audio_key",
    "video_key",
    "side_video_key",
    "segment_video_key",
    "avatar_key",
    "call_avatar_key",
    "transcript_key",
    "captions_key",
    "poster_key",
]

CALL_ID_RE = re.compile(r"^CA[0-9a-f]{32}$")
DIGEST_RE = re.compile(r"^[0-9a-f]{8,64}$")
SIDE_RE = re.compile(r"^(caller|callee)$")


class InvalidCallId(ValueError):
    """A call id that is not a Twilio CallSid."""


def validate_call_id(call_id: object) -> str:
    if not isinstance(call_id, str) or not CALL_ID_RE.match(call_id):
        raise InvalidCallId(f"invalid call id {call_id!r}: expected a Twilio CallSid (CA + 32 hex digits)")
    return call_id


def _side(side: str) -> str:
    if not SIDE_RE.match(side):
        raise ValueError(f"invalid side {side!r}: expected caller or callee")
    return side


def new_call_id() -> str:
    """A fresh id in CallSid form, for recordings that did not come from Twilio."""
    return "CA" + uuid.uuid4().hex


#: What a recording may be stored as, by its real format (the extension of its key). Twilio's are mp3.
RECORDING_FORMATS = ("mp3", "wav", "flac", "ogg", "m4a")


def recording_key(call_id: str, fmt: str | None = None) -> str:
    """The call's original recording, under its real extension (``calls.recording_format``; None: mp3)."""
    fmt = fmt or "mp3"
    if fmt not in RECORDING_FORMATS:
        raise ValueError(f"invalid recording format {fmt!r}: expected one of {', '.join(RECORDING_FORMATS)}")
    return f"recordings/{validate_call_id(call_id)}.{fmt}"


def side_audio_key(call_id: str, side: str) -> str:
    return f"audio/{validate_call_id(call_id)}-{_side(side)}.mp3"


def segment_audio_key(call_id: str, side: str, index: int) -> str:
    return f"audio/{validate_call_id(call_id)}-{_side(side)}-{int(index):03d}.mp3"


def video_key(call_id: str) -> str:
    return f"videos/{validate_call_id(call_id)}.mp4"


def side_video_key(call_id: str, side: str) -> str:
    return f"videos/{validate_call_id(call_id)}-{_side(side)}.mp4"


def chunk_sound_key(call_id: str, digest: str) -> str:
    """A long call's one-pass sound track, rendered before the join (removed with the chunks)."""
    if not digest.isalnum():
        raise ValueError(f"invalid sound digest {digest!r}")
    return f"chunks/{validate_call_id(call_id)}-{digest[:16]}-sound.m4a"


def chunk_video_key(call_id: str, plan: str, index: int) -> str:
    """One time chunk of a long call's video, before the join (removed once the video is stored)."""
    if not plan.isalnum():
        raise ValueError(f"invalid chunk plan {plan!r}")
    return f"chunks/{validate_call_id(call_id)}-{plan[:16]}-{int(index):04d}.mp4"


def segment_video_key(call_id: str, side: str, index: int) -> str:
    return f"videos/{validate_call_id(call_id)}-{_side(side)}-{int(index):03d}.mp4"


def avatar_key(side: str, digest: str) -> str:
    """A shipped avatar image as fal fetches it; named by its content, so a new image gets a new key."""
    if not DIGEST_RE.match(digest):
        raise ValueError(f"invalid avatar digest {digest!r}")
    return f"avatars/{_side(side)}-{digest}.png"


def call_avatar_key(call_id: str, side: str, ext: str) -> str:
    """One call's own avatar image for a side (checked and re-encoded before it is stored)."""
    if ext not in ("png", "jpg", "webp"):
        raise ValueError(f"invalid avatar image extension {ext!r}")
    return f"avatars/{validate_call_id(call_id)}-{_side(side)}.{ext}"


def transcript_key(call_id: str) -> str:
    """The call's transcript as JSON turns (shared/transcript.py)."""
    return f"transcripts/{validate_call_id(call_id)}.json"


def captions_key(call_id: str) -> str:
    """The call's captions as WebVTT with voice tags."""
    return f"captions/{validate_call_id(call_id)}.vtt"


def poster_key(call_id: str) -> str:
    """The video's poster still, also its cover art."""
    return f"videos/{validate_call_id(call_id)}.jpg"
