"""The ``compose`` actor on a Dramatiq worker: the call's row, redelivery, re-render, give-up, the status callback."""

from __future__ import annotations

import json

import pytest

from shared import keys
from shared.contracts import COMPOSE
from shared.models import Call
from tests.services.compositor.test_callback import SECRET, receiver_accepts
from tests.support.http_sink import HttpSink


@pytest.fixture
def sink(settings_env):
    with HttpSink() as server:
        settings_env(VIDEO_STATUS_CALLBACK_URL=server.url, VIDEO_STATUS_CALLBACK_SECRET=SECRET)
        yield server


def test_compose_completes_the_call_once_and_tells_the_host(calls, s3, run_compose, sink, tmp_dir):
    call = calls.call(caller_state="generated", callee_state="local")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))

    run_compose(call.id)

    row = Call.get_by_id(call.id)
    assert (row.video_status, row.stage, row.video_error_message, row.rerender) == ("completed", "done", None, False)
    assert row.video_url == s3.object_url(keys.video_key(call.id)) and s3.exists(keys.video_key(call.id))
    assert row.caller_video_url == s3.object_url(keys.segment_video_key(call.id, "caller", 0))
    assert row.callee_video_url is None
    assert row.compositor_attempts == 1 and row.compositor_finished_at is not None
    assert row.video_processing_completed_at is not None and row.video_processing_duration >= 0
    assert list(tmp_dir.iterdir()) == []
    [request] = sink.wait_for(1)
    assert receiver_accepts(request.headers, request.body)
    assert json.loads(request.body)["video_status"] == "completed"
    assert json.loads(request.body)["video_url"] == row.video_url

    # RabbitMQ delivers at least once: the same message again changes nothing.
    run_compose(call.id)
    again = Call.get_by_id(call.id)
    assert again.compositor_attempts == 1 and again.video_processing_completed_at == row.video_processing_completed_at
    assert len(sink.received) == 1


def test_a_rerender_composes_an_ended_call_again(calls, s3, run_compose, sink, settings_env):
    call = calls.call()
    run_compose(call.id)
    first = Call.get_by_id(call.id)
    assert first.video_status == "completed"

    settings_env(CALLER_LABEL="Agent v2")
    run_compose(call.id, rerender=True)

    second = Call.get_by_id(call.id)
    assert second.video_status == "completed" and second.stage == "done" and second.rerender is False
    assert second.compositor_attempts == 2
    assert second.video_processing_completed_at > first.video_processing_completed_at
    assert len(sink.wait_for(2)) == 2


def test_a_corrupt_side_video_makes_the_call_partial_with_its_reason(calls, s3, run_compose, sink):
    call = calls.call(caller_state="generated", callee_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))
    calls.segment(call, "callee", 0, 0.0, 4.0, b"not a video at all" * 100)

    run_compose(call.id)

    row = Call.get_by_id(call.id)
    assert row.video_status == "partial" and row.video_url
    assert "callee video unusable" in row.video_error_message
    payload = json.loads(sink.wait_for(1)[0].body)
    assert payload["video_status"] == "partial" and "callee video unusable" in payload["error"]


def test_a_stitch_failure_ends_partial_with_the_side_video(calls, s3, run_compose, sink, settings_env):
    settings_env(VIDEO_PRESET="no-such-preset")
    call = calls.call(caller_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))

    run_compose(call.id)

    row = Call.get_by_id(call.id)
    assert row.video_status == "partial" and row.stage == "done" and row.video_url is None
    assert row.video_error_message.startswith("stitching failed")
    assert row.caller_video_url == s3.object_url(keys.segment_video_key(call.id, "caller", 0))
    assert json.loads(sink.wait_for(1)[0].body)["caller_video_url"] == row.caller_video_url


def test_a_missing_recording_fails_the_call_without_retrying(calls, s3, run_compose, sink, tmp_dir):
    call = calls.call()
    s3.delete(keys.recording_key(call.id))

    run_compose(call.id)

    row = Call.get_by_id(call.id)
    assert row.video_status == "failed" and row.stage == "done"
    assert "recording" in row.video_error_message and "missing" in row.video_error_message
    assert row.compositor_attempts == 1
    assert json.loads(sink.wait_for(1)[0].body)["video_status"] == "failed"
    assert list(tmp_dir.iterdir()) == []


def test_when_compose_gives_up_the_generated_side_video_is_kept(calls, s3, stub_broker, compositor_worker, compositor_actors, sink, monkeypatch):
    def storage_down(*args, **kwargs):
        raise ConnectionError("S3 is unreachable")

    monkeypatch.setattr(compositor_actors.stage, "compose_call", storage_down)
    call = calls.call(caller_state="generated")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))

    stub_broker.enqueue(COMPOSE.message(call_id=call.id).copy(options={"max_retries": 0}))
    stub_broker.join("compositor", fail_fast=False)
    compositor_worker.join()

    row = Call.get_by_id(call.id)
    assert row.video_status == "partial" and row.stage == "done"
    assert row.video_error_message == "compositing failed: S3 is unreachable"
    assert row.caller_video_url == s3.object_url(keys.segment_video_key(call.id, "caller", 0))
    assert json.loads(sink.wait_for(1)[0].body)["video_status"] == "partial"


def test_an_invalid_call_id_is_refused_without_touching_anything(pg_db, run_compose):
    run_compose("../../etc/passwd")
    assert Call.select().count() == 0
