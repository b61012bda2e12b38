"""The signed status callback, as a receiver sees it on a loopback HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from services.compositor import callback
from services.compositor.callback import SIGNATURE_HEADER, send_status, signature_header, verify
from shared.models import Call
from shared.settings import get_settings
from tests.support.http_sink import HttpSink

SECRET = "s3cr3t-shared-with-the-host"


def receiver_accepts(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    """docs/compositor.md's verification recipe, written out independently of the sender's code."""
    fields = dict(part.split("=", 1) for part in headers[SIGNATURE_HEADER.lower()].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


def test_signature_round_trip_and_what_breaks_it():
    body = b'{"call_id":"CA1","video_status":"completed"}'
    header = signature_header(SECRET, body)
    assert verify(SECRET, header, body)
    assert not verify("another secret", header, body)
    assert not verify(SECRET, header, body.replace(b"completed", b"failed"))
    assert not verify(SECRET, signature_header(SECRET, body, timestamp=int(time.time()) - 3600), body)  # a replay
    assert not verify(SECRET, "v1=deadbeef", body)


def test_the_final_state_is_posted_signed(pg_db, settings_env):
    with HttpSink() as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        Call.create(id="CA" + "b" * 32, video_status="partial", video_url="https://bucket/videos/x.mp4", video_error_message="caller failed")

        assert send_status("CA" + "b" * 32, get_settings()) is True

        [request] = sink.wait_for(1)
    assert request.path == "/callbacks/video" and request.headers["content-type"] == "application/json"
    assert receiver_accepts(request.headers, request.body)
    assert not receiver_accepts(request.headers, request.body, secret="wrong")
    payload = json.loads(request.body)
    assert payload["call_id"] == "CA" + "b" * 32
    assert (payload["video_status"], payload["video_url"], payload["error"]) == ("partial", "https://bucket/videos/x.mp4", "caller failed")
    assert payload["event"] == request.headers["x-callreel-event"] == "call.video"


def test_a_receiver_that_fails_is_retried_then_given_up(pg_db, settings_env, monkeypatch):
    monkeypatch.setattr(callback.time, "sleep", lambda seconds: None)
    Call.create(id="CA" + "c" * 32, video_status="completed")
    with HttpSink(statuses=(503, 200)) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status("CA" + "c" * 32, get_settings()) is True
        assert len(sink.wait_for(2)) == 2
    with HttpSink(statuses=(500,)) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status("CA" + "c" * 32, get_settings()) is False
        assert len(sink.wait_for(callback.ATTEMPTS)) == callback.ATTEMPTS
    with HttpSink(statuses=(401,)) as sink:  # refused: sending again would not help
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status("CA" + "c" * 32, get_settings()) is False
        assert len(sink.received) == 1


def test_nothing_is_sent_without_a_url(pg_db):
    Call.create(id="CA" + "d" * 32, video_status="completed")
    assert send_status("CA" + "d" * 32, get_settings()) is False
