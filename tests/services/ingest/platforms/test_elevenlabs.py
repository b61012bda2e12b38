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

from .conftest import ELEVENLABS_SECRET, calls, dumps, post, stored_turns

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


def test_the_transcript_s_messages_become_turns_that_last_until_the_next_one():
    messages = [
        {"role": "user", "message": "Just checking.", "time_in_call_secs": 2},
        {"role": "agent", "message": "Hello, how can I help?", "time_in_call_secs": 0},
        {"role": "agent", "message": None, "time_in_call_secs": 3, "tool_calls": [{}]},  # a tool call: no words
        {"role": "agent", "message": "Done.", "time_in_call_secs": 3.5},
    ]
    assert elevenlabs.transcript_turns(messages, 6.0) == [
        {"speaker": "caller", "start": 0.0, "end": 2.0, "text": "Hello, how can I help?"},
        {"speaker": "callee", "start": 2.0, "end": 3.5, "text": "Just checking."},
        {"speaker": "caller", "start": 3.5, "end": 6.0, "text": "Done."},
    ]
    assert elevenlabs.transcript_turns(messages, None)[-1]["end"] == 3.5 + elevenlabs.LAST_TURN


def halves() -> list:
    from shared.pair_halves import PairHalf

    return list(PairHalf.select())


def deliver(client, payload: dict):
    body = dumps(payload)
    response = post(client, PATH, body, signed(body))
    assert response.status_code == 200, response.text
    return response.json["result"]


def test_audio_then_transcript_make_one_call_with_both_whatever_the_duplicates(platform_client, stereo_mp3):
    from shared.storage import get_storage

    audio = stereo_mp3.read_bytes()
    assert [deliver(platform_client, audio_event(audio)) for _ in range(2)] == ["waiting", "waiting"]
    assert calls("elevenlabs") == []
    (half,) = halves()
    assert half.turns is None and get_storage().exists(half.audio_key)  # the audio is in the store, not in the row

    assert deliver(platform_client, TRANSCRIPTION) == "queued"
    assert [deliver(platform_client, TRANSCRIPTION), deliver(platform_client, audio_event(audio))] == ["duplicate", "duplicate"]
    (call,) = calls("elevenlabs")
    assert (call.external_id, call.recording_format, call.transcript_status) == (CONVERSATION, "mp3", "supplied")
    assert get_storage().path(f"recordings/{call.id}.mp3").read_bytes() == audio  # type: ignore[attr-defined]
    assert [(t["speaker"], t["start"], t["end"]) for t in stored_turns(call)] == [("caller", 0.0, 2.0), ("callee", 2.0, 4.0)]
    assert halves() == [] and not get_storage().exists(half.audio_key)


def test_transcript_then_audio_make_the_call_too(platform_client, stereo_mp3):
    assert [deliver(platform_client, TRANSCRIPTION) for _ in range(2)] == ["waiting", "waiting"]
    (half,) = halves()
    assert half.audio_key is None and len(half.turns) == 2
    assert deliver(platform_client, audio_event(stereo_mp3.read_bytes())) == "queued"
    (call,) = calls("elevenlabs")
    assert len(stored_turns(call)) == 2 and halves() == []
    assert isinstance(elevenlabs.parse({"type": "call_initiation_failure", "data": {}}, "left"), Ignored)


def test_a_half_whose_pair_never_comes_is_settled_after_the_timeout(platform_client, stereo_mp3, caplog):
    import datetime as dt

    from services.ingest import expire_pairs
    from shared.models import utcnow
    from shared.settings import get_settings

    assert deliver(platform_client, audio_event(stereo_mp3.read_bytes())) == "waiting"
    assert deliver(platform_client, {**TRANSCRIPTION, "data": {**TRANSCRIPTION["data"], "conversation_id": "conv_alone"}}) == "waiting"
    settings = get_settings()
    assert expire_pairs(settings) == []  # not yet
    from shared.pair_halves import PairHalf

    PairHalf.update(created_at=utcnow() - dt.timedelta(seconds=settings.elevenlabs_pair_timeout + 1)).execute()
    lines = expire_pairs(settings)
    assert len(lines) == 2 and halves() == []
    (call,) = calls("elevenlabs")  # the audio alone: a call without a transcript (the audio stage fails it if mono)
    assert call.external_id == CONVERSATION and call.transcript_status in (None, "none")
    assert any("conv_alone" in line and "dropped" in line for line in lines)
    assert "never came: dropped" in caplog.text


def test_a_transcript_the_submission_refuses_does_not_lose_the_call(platform_client, stereo_mp3):
    import dataclasses

    from services.ingest.platforms import pairing
    from shared.settings import get_settings

    settings = dataclasses.replace(get_settings(), transcript_max_bytes=20)  # every transcript is too long
    for payload in (TRANSCRIPTION, audio_event(stereo_mp3.read_bytes())):
        result = pairing.receive("elevenlabs", elevenlabs.parse(payload, "left"), settings)
    assert result.created
    (call,) = calls("elevenlabs")
    assert call.transcript_status in (None, "none") and halves() == []
