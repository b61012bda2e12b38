"""RabbitMQ connections dropped, then the vhost refusing everyone for a while, with work queued: nothing is lost.

Only this session's vhost is touched: its connections are closed through the
management API and the test user's permissions on it are revoked and granted
back. The shared RabbitMQ server keeps running for everybody else.

What redelivery may repeat here is bounded by the actors' idempotency: a
message whose ack was lost with its connection comes back and finds its work
recorded (``progress.begin`` skips a call past that stage; a segment leaves
``pending`` only once, so fal never gets the same segment twice).
"""

from __future__ import annotations

import time

import pytest

from shared import keys
from shared.models import Call, VideoStatus
from tests.support.s3_proxy import key_is, writes_of
from tests.support.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

OUTAGE_SECONDS = 5


def test_connections_dropped_and_the_broker_away_for_a_while(pipeline):
    calls = [pipeline.send_call() for _ in range(3)]  # queued: downloads and splits are under way

    assert pipeline.rabbit.drop_connections() >= 5  # gunicorn and the four workers
    time.sleep(0.5)
    pipeline.rabbit.revoke()  # reconnections are refused: the broker is away for everyone here
    pipeline.rabbit.drop_connections()
    time.sleep(OUTAGE_SECONDS)
    pipeline.rabbit.grant()

    late = pipeline.send_call()  # the web app reconnects on its own
    ended = pipeline.wait_ended([c.call_id for c in calls + [late]])

    for sent in calls + [late]:
        call = ended[sent.call_id]
        assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
        assert Call.select().where(Call.recording_sid == sent.recording.sid).count() == 1
        # The work itself was done once: stored once, split once, sent to fal once, composed once.
        log = pipeline.proxy.log()
        assert writes_of(log, keys.recording_key(sent.call_id)) == 1
        for side in ("caller", "callee"):
            assert writes_of(log, keys.side_audio_key(sent.call_id, side)) == 1
            assert len(pipeline.fal_submissions(sent.call_id, side)) == 1, pipeline.describe(sent.call_id)
        assert writes_of(log, keys.video_key(sent.call_id)) == 1 and call.compositor_attempts == 1
    # Every worker came back by itself: none was restarted by the test.
    assert all(w.alive for w in pipeline.workers.values())
    assert pipeline.temp_leftovers() == []


def test_a_connection_dropped_mid_compose_does_not_compose_twice(pipeline):
    """The compose message comes back while its compose still runs: the duplicate waits for it, and then has nothing to do."""
    sent = pipeline.send_call(post=False)
    hold = pipeline.proxy.hold(key_is(keys.segment_video_key(sent.call_id, "caller", 0), "GET"), seconds=60)
    try:
        assert pipeline.post_webhook(sent.form).status_code == 202
        assert hold.wait_reached(90), pipeline.describe(sent.call_id)
        assert pipeline.rabbit.drop_connections() >= 1
        # The redelivered copy reaches the compositor's other thread once its consumer reconnects.
        wait_for(
            lambda: "another worker is composing" in pipeline.workers["compositor"].log()
            or Call.get_by_id(sent.call_id).compositor_attempts > 1,  # (the duplicate composing too)
            timeout=60, what="the compositor to meet the duplicate", describe=pipeline.logs,
        )
    finally:
        hold.release()
    call = pipeline.wait_ended_one(sent.call_id)
    # The duplicate looks again after the first compose ended, and finds nothing to do.
    wait_for(
        lambda: any("skipped" in line and sent.call_id in line for line in pipeline.workers["compositor"].log().splitlines()),
        timeout=60, what="the compositor to log the skip", describe=pipeline.logs,
    )
    call = Call.get_by_id(sent.call_id)
    assert call.video_status == VideoStatus.COMPLETED and call.compositor_attempts == 1
    assert writes_of(pipeline.proxy.log(), keys.video_key(sent.call_id)) == 1
