"""S3 refusing requests (503 SlowDown) or away altogether: boto3's retries and the actors' own get every call through.

The refusals come from the fault proxy every process reaches S3 through. They
hit the workers' requests; presigned URLs fal fetches are left alone here (a
refused fetch fails a fal job, which is fal's failure mode, tested elsewhere).
An outage (the port closed) lasts a minute: the harness's
STORAGE_OUTAGE_TOLERANCE is 90 s, so every stage waits it out; one shorter
than the outage ends the call with a reason naming the upload that failed.
"""

from __future__ import annotations

import time

import pytest

from shared import keys
from shared.models import Call, Stage, VideoStatus
from tests.support.s3_proxy import writes_of
from tests.support.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def workers_requests(request) -> bool:
    return "X-Amz-Signature" not in request.query


def test_s3_refusing_every_worker_request_for_a_time_window(pipeline):
    sent = pipeline.send_call(post=False)
    pipeline.proxy.refuse_for(6.0, workers_requests)
    started = time.monotonic()
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id)

    refused = pipeline.proxy.refused()
    assert refused and all(r.at - started < 7.0 for r in refused)
    assert any(r.key == keys.recording_key(sent.call_id) for r in refused)  # the download's upload was refused
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert pipeline.object_bytes(keys.recording_key(sent.call_id)) == sent.body
    assert writes_of(pipeline.proxy.log(), keys.video_key(sent.call_id)) == 1
    assert pipeline.unfinished_uploads() == [] and pipeline.temp_leftovers() == []


def test_s3_refusing_the_next_requests_of_each_stage(pipeline):
    """A burst of refusals wherever the call is: each stage meets some, none gives up."""
    sent = pipeline.send_call(post=False)
    pipeline.proxy.refuse_next(3, workers_requests)
    assert pipeline.post_webhook(sent.form).status_code == 202
    stages_hit = set()

    def ended() -> bool:
        call = Call.get_by_id(sent.call_id)
        if call.stage not in stages_hit and call.stage in ("audio", "generation", "compositor"):
            stages_hit.add(call.stage)
            pipeline.proxy.refuse_next(3, workers_requests)  # three more, for the stage it just reached
        return call.video_status in VideoStatus.TERMINAL

    wait_for(ended, timeout=240, interval=0.05, what="the call to end", describe=lambda: pipeline.describe(sent.call_id))
    call = pipeline.wait_ended_one(sent.call_id)

    assert len(pipeline.proxy.refused()) >= 6
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert writes_of(pipeline.proxy.log(), keys.video_key(sent.call_id)) == 1
    assert pipeline.unfinished_uploads() == [] and pipeline.temp_leftovers() == []


OUTAGE = 60.0


def test_s3_away_for_a_minute_when_the_webhook_arrives(pipeline):
    """D4: the recording's upload meets the outage; ingest retries with backoff past it, the call completes."""
    sent = pipeline.send_call(post=False)
    pipeline.proxy.down_for(OUTAGE)
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id, timeout=OUTAGE + 120)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert pipeline.object_bytes(keys.recording_key(sent.call_id)) == sent.body
    assert writes_of(pipeline.proxy.log(), keys.video_key(sent.call_id)) == 1
    ingest = pipeline.workers["ingest"].log()
    # The failure is named for what failed (the upload), not blamed on Twilio's download.
    assert f"the object store failed the upload of {keys.recording_key(sent.call_id)}" in ingest
    assert "download attempt failed" not in ingest
    assert pipeline.unfinished_uploads() == [] and pipeline.temp_leftovers() == []


def test_s3_away_for_a_minute_once_the_call_is_past_ingest(pipeline):
    """Every stage outlasts the outage, not only ingest (audio's own budget is 2 retries)."""
    sent = pipeline.send_call()
    deadline = time.monotonic() + 60
    while Call.get_by_id(sent.call_id).stage in (None, Stage.INGEST) and time.monotonic() < deadline:
        time.sleep(0.02)
    pipeline.proxy.down_for(OUTAGE)
    call = pipeline.wait_ended_one(sent.call_id, timeout=OUTAGE + 120)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    later = "".join(pipeline.workers[s].log() for s in ("audio", "generation", "compositor"))
    assert "the object store failed the" in later
    assert writes_of(pipeline.proxy.log(), keys.video_key(sent.call_id)) == 1
    assert pipeline.unfinished_uploads() == [] and pipeline.temp_leftovers() == []


def test_s3_away_longer_than_the_tolerance_fails_the_call_naming_the_upload(pipeline):
    """D4's message: the call fails after STORAGE_OUTAGE_TOLERANCE, blaming the store, not Twilio."""
    # One S3 attempt per try, so the tries (not boto3's own backoff) set the pace.
    pipeline.restart("ingest", STORAGE_OUTAGE_TOLERANCE="10", S3_MAX_ATTEMPTS="1")
    sent = pipeline.send_call(post=False)
    pipeline.proxy.down_for(20.0)
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id, timeout=90)

    assert call.video_status == VideoStatus.FAILED
    reason = call.video_error_message
    assert reason.startswith(f"the object store failed the upload of {keys.recording_key(sent.call_id)}"), reason
    assert "STORAGE_OUTAGE_TOLERANCE=10" in reason and "download" not in reason.split("(")[0]
    assert len(pipeline.twilio.media_gets(sent.recording)) >= 3  # retried with backoff, not given up at once
