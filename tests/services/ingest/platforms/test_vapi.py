"""Vapi's end-of-call-report at /webhooks/vapi: its credential schemes, the mapping, one call per Vapi call.

The payload follows Vapi's documented shape (docs.vapi.ai/server-url/events,
"End of Call Report"; the Artifact and BotMessage schemas of its API reference),
with values of our own.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from services.ingest.platforms import vapi
from services.ingest.platforms.common import Ignored

from .conftest import VAPI_SECRET, calls, dumps, post, stored_turns

PATH = "/webhooks/vapi"
CALL_ID = "3f1e9c52-7d2a-4d0e-9a51-2b6c0c1d7e88"
STEREO = "https://storage.vapi.ai/3f1e9c52-7d2a-4d0e-9a51-2b6c0c1d7e88-1733251234567-stereo.wav"
T0 = 1733251200000  # epoch ms when the call started


def report(**artifact_extra) -> dict:
    return {
        "message": {
            "type": "end-of-call-report",
            "endedReason": "customer-ended-call",
            "call": {"id": CALL_ID, "orgId": "org-1", "type": "outboundPhoneCall"},
            "artifact": {
                "recording": {"stereoUrl": STEREO, "mono": {"combinedUrl": STEREO.replace("stereo", "mono")}},
                "transcript": "AI: Hello, this is Ava from Acme. User: Hi Ava.",
                "messages": [
                    {"role": "system", "message": "You are Ava.", "time": T0, "secondsFromStart": 0},
                    {"role": "bot", "message": "Hello, this is Ava from Acme.", "time": T0 + 600, "endTime": T0 + 2400,
                     "secondsFromStart": 0.6, "duration": 1800, "source": ""},
                    {"role": "user", "message": "Hi Ava.", "time": T0 + 3000, "endTime": T0 + 3900,
                     "secondsFromStart": 3.0, "duration": 900},
                    {"role": "tool_calls", "toolCalls": [], "time": T0 + 4000, "secondsFromStart": 4.0},
                    {"role": "assistant", "message": "How can I help?", "time": T0 + 4100, "endTime": T0 + 5000, "secondsFromStart": 4.1},
                ],
                **artifact_extra,
            },
        }
    }


def hmac_headers(body: bytes, *, secret: str = VAPI_SECRET, when: float | None = None) -> dict[str, str]:
    stamp = str(int(when if when is not None else time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"x-signature": digest, "x-timestamp": stamp}


def test_each_vapi_credential_scheme_is_checked_and_tampering_refused():
    body, now = dumps(report()), time.time()
    assert vapi.verify(VAPI_SECRET, {"X-Vapi-Secret": VAPI_SECRET}, body, now) is None
    assert vapi.verify(VAPI_SECRET, {"Authorization": f"Bearer {VAPI_SECRET}"}, body, now) is None
    assert vapi.verify(VAPI_SECRET, hmac_headers(body, when=now), body, now) is None
    prefixed = hmac_headers(body, when=now)
    prefixed["x-signature"] = "sha256=" + prefixed["x-signature"]
    assert vapi.verify(VAPI_SECRET, prefixed, body, now) is None

    assert "not VAPI_WEBHOOK_SECRET" in vapi.verify(VAPI_SECRET, {"X-Vapi-Secret": "guess"}, body, now)
    assert "not VAPI_WEBHOOK_SECRET" in vapi.verify(VAPI_SECRET, {"Authorization": "Bearer guess"}, body, now)
    assert "does not match" in vapi.verify(VAPI_SECRET, hmac_headers(body, when=now), body.replace(b"Ava", b"Eve"), now)
    assert "from now" in vapi.verify(VAPI_SECRET, hmac_headers(body, when=now - 3600), body, now)
    assert "no Vapi credential" in vapi.verify(VAPI_SECRET, {}, body, now)


def test_the_report_maps_bot_turns_to_the_agent_and_user_turns_to_the_customer():
    mapped = vapi.parse(report(), "right")
    assert mapped.external_id == CALL_ID and mapped.recording_url == STEREO and mapped.agent_channel == "right"
    assert mapped.turns == [
        {"speaker": "caller", "start": 0.6, "end": 2.4, "text": "Hello, this is Ava from Acme."},
        {"speaker": "callee", "start": 3.0, "end": 3.9, "text": "Hi Ava."},
        {"speaker": "caller", "start": 4.1, "end": 5.0, "text": "How can I help?"},
    ]
    # The older shape: the URL straight on the artifact.
    older = report(stereoRecordingUrl=STEREO)
    del older["message"]["artifact"]["recording"]
    assert vapi.parse(older, "left").recording_url == STEREO
    assert isinstance(vapi.parse({"message": {"type": "status-update", "status": "ended"}}, "left"), Ignored)
    assert isinstance(vapi.parse(report(recording={}), "left"), Ignored)


def test_a_signed_report_makes_one_call_and_a_forged_one_nothing(platform_client):
    body = dumps(report())
    forged = post(platform_client, PATH, body.replace(b"Ava", b"Eve"), {"X-Vapi-Secret": "not-the-secret"})
    unsigned = post(platform_client, PATH, body, {})
    assert (forged.status_code, unsigned.status_code) == (403, 401)
    assert calls("vapi") == []

    first = post(platform_client, PATH, body, {"X-Vapi-Secret": VAPI_SECRET})
    again = post(platform_client, PATH, body, hmac_headers(body))
    assert first.status_code == 200 and first.json["result"] == "queued", first.text
    assert again.status_code == 200 and again.json["result"] == "duplicate"
    assert again.json["call_id"] == first.json["call_id"]
    (call,) = calls("vapi")
    assert (call.external_id, call.recording_url, call.caller_channel) == (CALL_ID, STEREO, "left")
    assert [t["speaker"] for t in stored_turns(call)] == ["caller", "callee", "caller"]

    ignored = post(platform_client, PATH, dumps({"message": {"type": "hang"}}), {"X-Vapi-Secret": VAPI_SECRET})
    assert ignored.status_code == 200 and ignored.json["result"] == "ignored"


def test_with_an_api_key_the_recording_comes_from_vapis_authenticated_endpoint(platform_client, ingest_env):
    import falcon.testing

    from services.ingest.app import create_app

    ingest_env(VAPI_API_KEY="vapi-private-key")
    client = falcon.testing.TestClient(create_app())
    answer = post(client, PATH, dumps(report()), {"X-Vapi-Secret": VAPI_SECRET})
    assert answer.status_code == 200, answer.text
    (call,) = calls("vapi")
    assert call.recording_url == f"https://api.vapi.ai/call/{CALL_ID}/stereo-recording"
    assert call.recording_auth and "vapi-private-key" not in call.recording_auth  # sealed, never stored in clear


def test_without_its_secret_the_vapi_webhook_is_off(platform_client, ingest_env):
    import falcon.testing

    from services.ingest.app import create_app

    ingest_env(VAPI_WEBHOOK_SECRET="")
    answer = post(falcon.testing.TestClient(create_app()), PATH, dumps(report()), {"X-Vapi-Secret": ""})
    assert answer.status_code == 404 and "VAPI_WEBHOOK_SECRET" in answer.json["description"]
    assert calls("vapi") == []
