"""Retell's call_ended / call_analyzed at /webhooks/retell: x-retell-signature, the mapping, one call per Retell call.

The payload follows Retell's documented webhook (docs.retellai.com/features/webhook-overview:
``{"event", "call"}``, the call object of its Get Call reference), with values of our own.
"""

from __future__ import annotations

import time

from services.ingest.platforms import retell
from services.ingest.platforms.common import Ignored

from .conftest import RETELL_KEY, calls, dumps, post, stored_turns

PATH = "/webhooks/retell"
CALL_ID = "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6"
STEREO = "https://dxc03zgurdly9.cloudfront.net/Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6/recording_multichannel.wav"


def event(name: str = "call_ended", **call_extra) -> dict:
    return {
        "event": name,
        "call": {
            "call_type": "phone_call",
            "from_number": "+12137771234",
            "to_number": "+12137771235",
            "direction": "outbound",
            "call_id": CALL_ID,
            "agent_id": "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
            "call_status": "ended",
            "start_timestamp": 1733251200000,
            "end_timestamp": 1733251206000,
            "disconnection_reason": "user_hangup",
            "recording_url": STEREO.replace("_multichannel", ""),
            "recording_multi_channel_url": STEREO,
            "transcript": "Agent: Hi, this is Sam.\nUser: Hello Sam.\n",
            "transcript_object": [
                {"role": "agent", "content": "Hi, this is Sam.", "words": [
                    {"word": "Hi,", "start": 0.42, "end": 0.7}, {"word": "this", "start": 0.7, "end": 0.9},
                    {"word": "is", "start": 0.9, "end": 1.0}, {"word": "Sam.", "start": 1.0, "end": 1.46}]},
                {"role": "user", "content": "Hello Sam.", "words": [
                    {"word": "Hello", "start": 2.1, "end": 2.5}, {"word": "Sam.", "start": 2.5, "end": 2.94}]},
            ],
            **call_extra,
        },
    }


def signed(body: bytes, *, key: str = RETELL_KEY, when: float | None = None) -> dict[str, str]:
    return {"x-retell-signature": retell.sign(body, key, int((when if when is not None else time.time()) * 1000))}


def test_the_signature_is_retells_hmac_of_body_and_timestamp():
    body, now = dumps(event()), time.time()
    header = signed(body, when=now)
    assert header["x-retell-signature"].startswith("v=")
    assert retell.verify(RETELL_KEY, header, body, now) is None
    assert "does not match" in retell.verify(RETELL_KEY, header, body.replace(b"Sam", b"Bob"), now)
    assert "does not match" in retell.verify(RETELL_KEY, signed(body, key="key_other", when=now), body, now)
    assert "five minutes" in retell.verify(RETELL_KEY, signed(body, when=now - 600), body, now)
    assert "not v=" in retell.verify(RETELL_KEY, {"x-retell-signature": "sha256=abc"}, body, now)
    assert "no x-retell-signature" in retell.verify(RETELL_KEY, {}, body, now)


def test_agent_utterances_are_the_agents_and_user_utterances_the_customers():
    mapped = retell.parse(event(), "left")
    assert (mapped.external_id, mapped.recording_url) == (CALL_ID, STEREO)
    assert mapped.turns == [
        {"speaker": "caller", "start": 0.42, "end": 1.46, "text": "Hi, this is Sam."},
        {"speaker": "callee", "start": 2.1, "end": 2.94, "text": "Hello Sam."},
    ]
    assert isinstance(retell.parse(event("call_started"), "left"), Ignored)
    assert isinstance(retell.parse(event(recording_multi_channel_url=None), "left"), Ignored)


def test_call_ended_makes_the_call_call_analyzed_repeats_it_and_a_forgery_makes_nothing(platform_client):
    ended, analyzed = dumps(event()), dumps(event("call_analyzed", call_analysis={"call_summary": "A greeting."}))
    forged = post(platform_client, PATH, ended.replace(b"Sam", b"Bob"), signed(ended))
    assert forged.status_code == 403 and calls("retell") == []

    first = post(platform_client, PATH, ended, signed(ended))
    retried = post(platform_client, PATH, ended, signed(ended))
    second = post(platform_client, PATH, analyzed, signed(analyzed))
    assert first.status_code == 200 and first.json["result"] == "queued", first.text
    assert [retried.json["result"], second.json["result"]] == ["duplicate", "duplicate"]
    (call,) = calls("retell")
    assert (call.id, call.external_id, call.recording_url) == (first.json["call_id"], CALL_ID, STEREO)
    assert [(t["speaker"], t["text"]) for t in stored_turns(call)] == [("caller", "Hi, this is Sam."), ("callee", "Hello Sam.")]

    started = dumps(event("call_started"))
    assert post(platform_client, PATH, started, signed(started)).json["result"] == "ignored"


def test_a_signed_event_naming_a_recording_off_retells_hosts_is_refused_and_stores_nothing(platform_client):
    for url in ("https://169.254.169.254/latest/meta-data/recording.wav", "http://dxc03zgurdly9.cloudfront.net/x/recording.wav"):
        body = dumps(event(recording_multi_channel_url=url))
        answer = post(platform_client, PATH, body, signed(body))
        assert answer.status_code == 422, answer.text
    garbled = b'{"event": "call_ended", "call": '
    assert post(platform_client, PATH, garbled, signed(garbled)).status_code == 400
    assert calls("retell") == []
