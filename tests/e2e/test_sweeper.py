"""The sweeper (``callreel sweep``, a real process) gets stuck calls moving again, or fails them; ``callreel retry`` finishes them.

Stuck calls are made the way production makes them: a webhook stored while
the broker refused the job, a compose message dead-lettered by RabbitMQ, jobs
lost while a worker was down. "An hour later" is made by moving the call's
``updated_at`` back, instead of waiting STAGE_DEADLINE (60 s at least).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time

import pytest

from shared.models import Call, Segment, Stage, VideoStatus, utcnow
from tests.e2e.harness import BIN, ROOT
from tests.support.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def callreel(pipeline, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "callreel"), *args], cwd=ROOT, env=pipeline.env("cli"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"callreel {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def an_hour_passes(call_id: str) -> None:
    past = utcnow() - dt.timedelta(hours=1)
    Call.update(updated_at=past).where(Call.id == call_id).execute()
    Segment.update(updated_at=past).where(Segment.call_id == call_id).execute()


def test_a_call_stored_while_the_broker_refused_its_job_is_swept_into_the_pipeline(pipeline):
    sent = pipeline.send_call(post=False)
    pipeline.rabbit.revoke()
    pipeline.rabbit.drop_connections()
    try:
        refused = pipeline.post_webhook(sent.form)
    finally:
        pipeline.rabbit.grant()
    assert refused.status_code == 503, refused.text
    # Twilio delivers the callback again: a duplicate, which sends nothing.
    assert pipeline.post_webhook(sent.form).json()["result"] == "duplicate"
    time.sleep(1)
    call = Call.get_by_id(sent.call_id)
    assert (call.video_status, call.stage, call.ingest_started_at) == (VideoStatus.PENDING, Stage.INGEST, None)
    assert pipeline.twilio.media_gets(sent.recording) == []

    assert sent.call_id not in callreel(pipeline, "sweep")  # within the deadline: left alone
    an_hour_passes(sent.call_id)
    out = callreel(pipeline, "sweep")
    assert f"{sent.call_id} retried" in out and "re-enqueued from ingest" in out, out

    call = pipeline.wait_ended_one(sent.call_id)
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert call.sweep_count == 1 and call.ingest_attempts == 1


def test_a_dead_lettered_compose_is_swept_and_a_call_stuck_for_good_fails_then_retries(pipeline):
    # 1. The compose message is dead-lettered (rejected without requeue), so no worker ever runs it.
    pipeline.stop_worker("compositor")
    dead = pipeline.send_call()
    wait_for(
        lambda: Call.get_by_id(dead.call_id).compose_enqueued_at and pipeline.rabbit.queue("compositor").ready,
        timeout=90, what="the compose message in its queue", describe=pipeline.logs,
    )
    waiting = pipeline.rabbit.queue("compositor").ready
    messages = pipeline.rabbit.dead_letter("compositor", waiting)
    assert {"call_id": dead.call_id} in [m["kwargs"] for m in messages]
    assert pipeline.rabbit.queue("compositor.XQ").ready >= 1
    pipeline.restart("compositor")
    time.sleep(1)
    assert Call.get_by_id(dead.call_id).stage == Stage.COMPOSITOR  # nobody is working on it

    # 2. Another call's download job is lost while the ingest worker is down, again and again.
    pipeline.stop_worker("ingest")
    lost = pipeline.send_call()
    for sweep in (1, 2, 3):
        wait_for(lambda: pipeline.rabbit.queue("ingest").ready >= 1, timeout=30, what="a download message", describe=pipeline.logs)
        pipeline.rabbit.purge("ingest")
        an_hour_passes(lost.call_id)
        if sweep == 1:
            an_hour_passes(dead.call_id)
        out = callreel(pipeline, "sweep")
        if sweep == 1:
            assert f"{dead.call_id} retried" in out and "re-enqueued from compositor" in out, out
        if sweep < 3:
            assert f"{lost.call_id} retried" in out, out
    assert f"{lost.call_id} failed" in out, out

    # The dead-lettered call finished after its first sweep.
    call = pipeline.wait_ended_one(dead.call_id)
    assert call.video_status == VideoStatus.COMPLETED and call.sweep_count == 1 and call.compositor_attempts == 1

    # The lost one ended, with a reason that says what to do.
    call = Call.get_by_id(lost.call_id)
    assert call.video_status == VideoStatus.FAILED and call.sweep_count == 3
    assert "Stuck in the ingest stage" in call.video_error_message
    assert "2 automatic retries" in call.video_error_message and f"callreel retry {lost.call_id}" in call.video_error_message
    assert pipeline.twilio.media_gets(lost.recording) == []

    # The operator starts the ingest workers again and retries it.
    pipeline.restart("ingest")
    out = callreel(pipeline, "retry", lost.call_id)
    assert "re-enqueued from ingest" in out
    call = pipeline.wait_ended_one(lost.call_id)
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(lost.call_id)
    assert call.sweep_count == 0 and call.video_error_message is None
    assert len(pipeline.twilio.media_gets(lost.recording)) == 1
