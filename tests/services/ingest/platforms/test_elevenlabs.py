"""ElevenLabs' post-call webhooks at /webhooks/elevenlabs: ElevenLabs-Signature, post_call_audio makes the call.

The payloads follow ElevenLabs' documented post-call webhooks
(elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks: ``{"type",
"event_timestamp", "data"}``), with values of our own.
"""

from __future__ import annotations

import base64
import time

from services.ingest.platforms import elevenlabs
from services.ingest.platforms.common import Ignored

from .conftest import ELEVENLABS_SECRET, calls, dumps, post

PATH = "/webhooks/elevenlabs"
CONVERSATION = "conv_01jxk1wejhenk8x8tt9enzxw4a"


def audio_event(audio: bytes) -> dict:
    return {
        "type": "post_call_audio",
        "event_timestamp": 1733251300,
        "data": {"agent_id": "agent_01jxk0", "conversation_id": CONVERSATION, "full_audio": base64.b64encode(audio).decode()},
    }


TRANSCRIPTION = {
    "type": "post_call_transcription",
    "event_timestamp": 1733251300,
    "data": {
        "agent_id": "agent_01jxk0",
        "conversation_id": CONVERSATION,
        "status": "done",
        "transcript": [
            {"role": "agent", "message": "Hello, how can I help?", "time_in_call_secs": 0},
            {"role": "user", "message": "Just checking.", "time_in_call_secs": 2},
        ],
        "metadata": {"start_time_unix_secs": 1733251200, "call_duration_secs": 4},
    },
}


def signed(body: bytes, *, secret: str = ELEVENLABS_SECRET, when: float | None = None) -> dict[str, str]:
    return {"ElevenLabs-Signature": elevenlabs.sign(body, secret, int(when if when is not None else time.time()))}


def test_the_signature_is_elevenlabs_hmac_with_a_30_minute_tolerance():
    body, now = dumps(TRANSCRIPTION), time.time()
    assert elevenlabs.verify(ELEVENLABS_SECRET, signed(body, when=now - 25 * 60), body, now) is None
    assert "30-minute" in elevenlabs.verify(ELEVENLABS_SECRET, signed(body, when=now - 31 * 60), body, now)
    assert "does not match" in elevenlabs.verify(ELEVENLABS_SECRET, signed(body, when=now), body.replace(b"help", b"harm"), now)
    assert "does not match" in elevenlabs.verify(ELEVENLABS_SECRET, signed(body, secret="wsec_other", when=now), body, now)
    assert "no ElevenLabs-Signature" in elevenlabs.verify(ELEVENLABS_SECRET, {}, body, now)


def test_post_call_audio_makes_the_call_once_and_the_other_types_are_acknowledged(platform_client, stereo_mp3):
    audio = stereo_mp3.read_bytes()
    body = dumps(audio_event(audio))
    assert post(platform_client, PATH, body.replace(b"conv_", b"conw_"), signed(body)).status_code == 403
    assert calls("elevenlabs") == []

    first = post(platform_client, PATH, body, signed(body))
    again = post(platform_client, PATH, body, signed(body))
    assert first.status_code == 200 and first.json["result"] == "queued", first.text
    assert again.json == {**first.json, "result": "duplicate"}
    (call,) = calls("elevenlabs")
    assert (call.external_id, call.recording_format) == (CONVERSATION, "mp3")

    from shared.storage import get_storage

    assert get_storage().path(f"recordings/{call.id}.mp3").read_bytes() == audio  # type: ignore[attr-defined]

    transcription = dumps(TRANSCRIPTION)
    assert post(platform_client, PATH, transcription, signed(transcription)).json["result"] == "ignored"
    assert isinstance(elevenlabs.parse({"type": "call_initiation_failure", "data": {}}, "left"), Ignored)
