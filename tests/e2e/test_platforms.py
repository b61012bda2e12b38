"""A voice-agent platform's end-of-call webhook, through the deployed processes, to a finished video.

Each platform's signature and mapping is tested in tests/services/ingest/platforms/;
here each one's calls run through the deployed processes at once. Retell's
``call_ended`` and Vapi's ``end-of-call-report``, each signed as its platform
signs it, name a stereo WAV on a loopback https host (the fake Twilio's
unauthenticated media URLs, allow-listed as RETELL_RECORDING_HOSTS and
VAPI_RECORDING_HOSTS). The ingest worker fetches it, the audio stage splits it
by the agent's channel, and the supplied transcript becomes the video's captions.

Beside it, ElevenLabs' two webhooks for one conversation (the transcript
first, then a mono mix of both voices as ``full_audio``): paired into one call
whose audio stage splits the mix by the transcript's turns.
"""

from __future__ import annotations

import base64
import json
import time

import httpx

from services.ingest.platforms import elevenlabs, retell
from tests.e2e.harness import ELEVENLABS_SECRET, RETELL_API_KEY, VAPI_SECRET
from tests.support.media import ffmpeg, tone_call

CALL = "e2eRetellCall" + "q" * 19


def call_ended(url: str) -> bytes:
    words = lambda start, end, *ws: [{"word": w, "start": start, "end": end} for w in ws]  # noqa: E731
    payload = {
        "event": "call_ended",
        "call": {
            "call_type": "phone_call",
            "call_id": CALL,
            "agent_id": "agent_e2e",
            "call_status": "ended",
            "recording_multi_channel_url": url,
            "transcript_object": [
                {"role": "agent", "content": "Hello from the agent.", "words": words(0.3, 1.4, "Hello", "from", "the", "agent.")},
                {"role": "user", "content": "Hi there.", "words": words(1.8, 2.8, "Hi", "there.")},
            ],
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def post(pipeline, body: bytes, signature: str) -> httpx.Response:
    return httpx.post(
        f"{pipeline.base_url}/webhooks/retell",
        content=body,
        headers={"Content-Type": "application/json", "x-retell-signature": signature},
        timeout=20,
    )


def end_of_call_report(url: str) -> bytes:
    """Vapi's end-of-call report as its docs show it: bot and user messages with times from the call's start."""
    t0 = 1733251200000
    payload = {
        "message": {
            "type": "end-of-call-report",
            "endedReason": "customer-ended-call",
            "call": {"id": "e2e-vapi-call", "orgId": "org-e2e", "type": "outboundPhoneCall"},
            "artifact": {
                "recording": {"stereoUrl": url},
                "messages": [
                    {"role": "bot", "message": "Hello from Vapi.", "time": t0 + 300, "endTime": t0 + 1400, "secondsFromStart": 0.3},
                    {"role": "user", "message": "Hello robot.", "time": t0 + 1800, "endTime": t0 + 2800, "secondsFromStart": 1.8},
                ],
            },
        }
    }
    return json.dumps(payload).encode()


def post_elevenlabs(pipeline, kind: str, data: dict) -> str:
    body = json.dumps({"type": kind, "event_timestamp": int(time.time()), "data": {"conversation_id": "conv_e2e", **data}}).encode()
    signature = elevenlabs.sign(body, ELEVENLABS_SECRET, int(time.time()))
    answer = httpx.post(f"{pipeline.base_url}/webhooks/elevenlabs", content=body, headers={"ElevenLabs-Signature": signature}, timeout=20)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def test_each_platforms_end_of_call_webhook_becomes_a_captioned_video(pipeline):
    from shared.models import Call

    # ElevenLabs: the transcript waits for the audio (a mono mix of the agent's tone, then the user's).
    sides = tone_call(pipeline.root / "media-el.wav", 3.2, ((0.3, 1.4),), ((1.8, 2.8),), caller_hz=330, callee_hz=1330)
    mixed = pipeline.root / "media-el.mp3"
    ffmpeg("-i", str(sides), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "48k", str(mixed))
    transcript = [
        {"role": "agent", "message": "Hello from ElevenLabs.", "time_in_call_secs": 0.2},
        {"role": "user", "message": "Hi agent.", "time_in_call_secs": 1.6},
    ]
    assert post_elevenlabs(pipeline, "post_call_transcription", {"transcript": transcript, "metadata": {"call_duration_secs": 3}}) == "waiting"
    assert post_elevenlabs(pipeline, "post_call_audio", {"full_audio": base64.b64encode(mixed.read_bytes()).decode()}) == "queued"

    (pipeline.root / "media").mkdir(exist_ok=True)
    wav = tone_call(pipeline.root / "media" / "retell-call.wav", 3.2, ((0.3, 1.4),), ((1.8, 2.8),), caller_hz=330, callee_hz=1330)
    recording = pipeline.twilio.add_recording(wav.read_bytes())
    url = f"https://{pipeline.twilio.host}/media/{recording.sid}.wav?Expires=1&Signature=x"
    body = call_ended(url)

    assert post(pipeline, body.replace(b"agent.", b"robot."), retell.sign(body, RETELL_API_KEY, int(time.time() * 1000))).status_code == 403
    first = post(pipeline, body, retell.sign(body, RETELL_API_KEY, int(time.time() * 1000)))
    assert first.status_code == 200 and first.json()["result"] == "queued", first.text
    retry = post(pipeline, body, retell.sign(body, RETELL_API_KEY, int(time.time() * 1000)))
    assert retry.json()["result"] == "duplicate" and retry.json()["call_id"] == first.json()["call_id"]

    vapi_wav = tone_call(pipeline.root / "media" / "vapi-call.wav", 3.2, ((0.3, 1.4),), ((1.8, 2.8),), caller_hz=440, callee_hz=1100)
    vapi_recording = pipeline.twilio.add_recording(vapi_wav.read_bytes())
    vapi_body = end_of_call_report(f"https://{pipeline.twilio.host}/media/{vapi_recording.sid}.wav")
    vapi_url = f"{pipeline.base_url}/webhooks/vapi"
    assert httpx.post(vapi_url, content=vapi_body, headers={"X-Vapi-Secret": "guess"}, timeout=20).status_code == 403
    vapi = httpx.post(vapi_url, content=vapi_body, headers={"X-Vapi-Secret": VAPI_SECRET, "Content-Type": "application/json"}, timeout=20)
    assert vapi.status_code == 200 and vapi.json()["result"] == "queued", vapi.text

    call = pipeline.wait_ended_one(first.json()["call_id"])
    assert call.video_status == "completed", pipeline.describe(call.id)
    assert (call.source, call.external_id, call.recording_format, call.transcript_status) == ("retell", CALL, "wav", "supplied")
    assert Call.select().where(Call.source == "retell").count() == 1
    shown = pipeline.status(call.id).json()  # the status API names where the call came from
    assert (shown["source"], shown["external_id"]) == ("retell", CALL)
    captions = pipeline.object_bytes(f"captions/{call.id}.vtt").decode()
    assert "Hello from the agent." in captions and "Hi there." in captions
    # The agent's channel (left) is the caller: it speaks first, the customer after.
    assert call.caller_speech and call.callee_speech and call.caller_speech[0][0] < call.callee_speech[0][0]

    mixed_call = pipeline.wait_ended_one(Call.get((Call.source == "elevenlabs") & (Call.external_id == "conv_e2e")).id)
    assert mixed_call.video_status == "completed", pipeline.describe(mixed_call.id)
    assert (mixed_call.recording_format, mixed_call.transcript_status) == ("flac", "supplied")  # routed to two channels
    # The agent's turn (0.2–1.6 s) is on the caller's side, the user's on the callee's: each speaks in its own.
    assert [round(a) for a, _ in mixed_call.caller_speech] == [0] and [round(a) for a, _ in mixed_call.callee_speech] == [2]
    assert "Hi agent." in pipeline.object_bytes(f"captions/{mixed_call.id}.vtt").decode()

    vapi_call = pipeline.wait_ended_one(vapi.json()["call_id"])
    assert vapi_call.video_status == "completed", pipeline.describe(vapi_call.id)
    assert (vapi_call.source, vapi_call.external_id, vapi_call.transcript_status) == ("vapi", "e2e-vapi-call", "supplied")
    assert "Hello from Vapi." in pipeline.object_bytes(f"captions/{vapi_call.id}.vtt").decode()
    assert vapi_call.caller_speech[0][0] < vapi_call.callee_speech[0][0]  # the assistant's channel (left) is the caller
