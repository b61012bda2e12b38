"""S3 refusing requests (503 SlowDown) for a while: boto3's retries and the actors' own get every call through.

The refusals come from the fault proxy every process reaches S3 through. They
hit the workers' requests; presigned URLs fal fetches are left alone here (a
refused fetch fails a fal job, which is fal's failure mode, tested elsewhere).
"""

from __future__ import annotations

import time

import pytest

from shared import keys
from shared.models import Call, VideoStatus
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
