"""The signed status callback, as a receiver sees it on a loopback HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from services.compositor import callback
from services.compositor.callback import SIGNATURE_HEADER, send_status, signature_header, verify
from shared.settings import SettingsError, get_settings, load_settings
from tests.support.calls import make_call
from tests.support.http_sink import HttpSink

SECRET = "s3cr3t-shared-with-the-host-" + "k" * 8  # 32 bytes or more, as the settings require


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
        call = make_call(video_status="partial", video_url="https://bucket/videos/x.mp4", video_error_message="caller failed")

        assert send_status(call.id, get_settings()) is True

        [request] = sink.wait_for(1)
    assert request.path == "/callbacks/video" and request.headers["content-type"] == "application/json"
    assert receiver_accepts(request.headers, request.body)
    assert not receiver_accepts(request.headers, request.body, secret="wrong")
    payload = json.loads(request.body)
    assert payload["call_id"] == call.id
    assert (payload["video_status"], payload["video_url"], payload["error"]) == ("partial", "https://bucket/videos/x.mp4", "caller failed")
    assert payload["event"] == request.headers["x-callreel-event"] == "call.video"


def test_a_receiver_that_fails_is_retried_then_given_up(pg_db, settings_env, monkeypatch):
    monkeypatch.setattr(callback.time, "sleep", lambda seconds: None)
    call = make_call(video_status="completed")
    with HttpSink(statuses=(503, 200)) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call.id, get_settings()) is True
        assert len(sink.wait_for(2)) == 2
    with HttpSink(statuses=(500,)) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call.id, get_settings()) is False
        assert len(sink.wait_for(callback.ATTEMPTS)) == callback.ATTEMPTS
    with HttpSink(statuses=(401,)) as sink:  # refused: sending again would not help
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call.id, get_settings()) is False
        assert len(sink.received) == 1


def test_nothing_is_sent_without_a_url(pg_db):
    call = make_call(video_status="completed")
    assert send_status(call.id, get_settings()) is False


# -- issue 25: event ids, a verify() that fails closed, a long secret, retry spacing and 429 ---------------


def test_each_delivery_carries_an_event_id_that_is_signed_and_kept_across_retries(pg_db, settings_env, monkeypatch):
    monkeypatch.setattr(callback.time, "sleep", lambda seconds: None)
    call_id = make_call(video_status="completed").id
    with HttpSink(statuses=(503, 200)) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call_id, get_settings()) is True
        assert send_status(call_id, get_settings()) is True
        first_try, retry, second = sink.wait_for(3)
    ids = [json.loads(r.body)["event_id"] for r in (first_try, retry, second)]
    assert ids[0] == ids[1], "a retry is the same event: the receiver de-duplicates on its id"
    assert ids[2] != ids[0], "another delivery is another event"
    for request in (first_try, retry, second):
        assert request.headers["x-callreel-event-id"] == json.loads(request.body)["event_id"]
        assert receiver_accepts(request.headers, request.body)  # the id is inside the signed body


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        ",",
        "t=,v1=",
        "t=abc,v1=00",
        "t= 1,v1=00",
        "t=1_0,v1=00",
        "t=+1,v1=00",
        "v1=deadbeef",
        "t=1",
        "garbage",
        "t=1,v1=é",
        "t=1,v1=\x00",
        "t=1,t=2,v1=00",
        b"t=1,v1=00",
        12,
    ],
)
def test_verify_fails_closed_on_any_malformed_header(header):
    body = b"{}"
    assert verify(SECRET, header, body, now=1) is False


def test_verify_refuses_an_empty_secret_and_a_duplicated_signature():
    body = b"{}"
    good = signature_header(SECRET, body, timestamp=100)
    assert verify(SECRET, good, body, now=100)
    assert not verify("", signature_header("", body, timestamp=100), body, now=100)
    assert not verify(SECRET, good + ",v1=" + "0" * 64, body, now=100)
    assert not verify(SECRET, good.replace("t=100", "t=100,t=100"), body, now=100)


def test_a_callback_secret_shorter_than_32_bytes_is_refused_at_start():
    with pytest.raises(SettingsError) as info:
        load_settings({"VIDEO_STATUS_CALLBACK_URL": "https://host.example/cb", "VIDEO_STATUS_CALLBACK_SECRET": "x" * 31})
    assert info.value.problems == ["VIDEO_STATUS_CALLBACK_SECRET must be at least 32 bytes long (got 31)"]
    assert load_settings({"VIDEO_STATUS_CALLBACK_URL": "https://host.example/cb", "VIDEO_STATUS_CALLBACK_SECRET": "x" * 32})


def test_retries_wait_1_then_2_seconds(pg_db, settings_env, monkeypatch):
    waits = []
    monkeypatch.setattr(callback.time, "sleep", waits.append)
    call = make_call(video_status="completed")
    with HttpSink(statuses=(500,)) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call.id, get_settings()) is False
    assert waits == [1, 2]


def test_429_is_retried_after_the_receivers_retry_after(pg_db, settings_env, monkeypatch):
    waits = []
    monkeypatch.setattr(callback.time, "sleep", waits.append)
    call = make_call(video_status="completed")
    with HttpSink(statuses=(429, 429, 200), headers={429: {"Retry-After": "5"}}) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call.id, get_settings()) is True
        assert len(sink.wait_for(3)) == 3
    assert waits == [5, 5]


def test_a_huge_retry_after_is_capped(pg_db, settings_env, monkeypatch):
    waits = []
    monkeypatch.setattr(callback.time, "sleep", waits.append)
    call = make_call(video_status="completed")
    with HttpSink(statuses=(429, 200), headers={429: {"Retry-After": "86400"}}) as sink:
        settings_env(VIDEO_STATUS_CALLBACK_URL=sink.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        assert send_status(call.id, get_settings()) is True
    assert waits == [callback.MAX_RETRY_AFTER]
