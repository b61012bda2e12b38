"""S3 refusing requests (503 SlowDown) for a while: boto3's retries and the actors' own get every call through.

The refusals come from the fault proxy every process reaches S3 through. They
hit the workers' requests; presigned URLs fal fetches are left alone here (a
refused fetch fails a fal job, which is fal's failure mode, tested elsewhere).
Each test checks where the refusals landed (which stage's requests met them)
and that every refused request was sent again and answered: nothing skipped.
"""

from __future__ import annotations

import re

import pytest

from shared import keys
from shared.models import VideoStatus
from tests.support.s3_proxy import Request, not_retried, writes_of

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

WRITES = ("PUT", "POST")


def workers_requests(request) -> bool:
    return "X-Amz-Signature" not in request.query


def stage_requests(call_id: str) -> dict[str, object]:
    """Per stage, a match for requests only that stage's worker sends (by key and method)."""
    segment_video = re.compile(rf"videos/{call_id}-(caller|callee)-\d{{3}}\.mp4")
    return {
        "ingest": lambda r: r.key == keys.recording_key(call_id) and r.method in WRITES,  # the download's upload
        "audio": lambda r: r.key.startswith(f"audio/{call_id}-") and r.method in WRITES,  # the split sides and segments
        "generation": lambda r: bool(segment_video.fullmatch(r.key)) and r.method in WRITES,  # fal's videos stored
        "compositor": lambda r: r.key == keys.video_key(call_id) and r.method in WRITES,  # the final video
    }


def test_s3_refusing_every_worker_request_for_a_time_window(pipeline):
    sent = pipeline.send_call(post=False)
    pipeline.proxy.refuse_for(6.0, workers_requests)
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id)

    log = pipeline.proxy.log()
    refused = [r for r in log if r.refused]
    # The download met the outage: its upload was refused, and sent again until it went through.
    assert any(stage_requests(sent.call_id)["ingest"](r) for r in refused), [(r.method, r.key) for r in refused]
    assert not_retried(log) == [], "refused and never sent again"
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert pipeline.object_bytes(keys.recording_key(sent.call_id)) == sent.body
    assert writes_of(log, keys.video_key(sent.call_id)) == 1
    assert pipeline.unfinished_uploads() == [] and pipeline.temp_leftovers() == []


def test_s3_refusing_the_next_requests_of_each_stage(pipeline):
    """Three refusals for each stage's own writes: each stage meets them, none gives up, nothing is skipped."""
    sent = pipeline.send_call(post=False)
    stages = stage_requests(sent.call_id)
    for match in stages.values():
        pipeline.proxy.refuse_next(3, lambda r, match=match: workers_requests(r) and match(r))
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id)

    log = pipeline.proxy.log()
    met: dict[str, list[Request]] = {stage: [r for r in log if r.refused and match(r)] for stage, match in stages.items()}
    assert {stage: len(hits) for stage, hits in met.items()} == dict.fromkeys(stages, 3), [(r.method, r.key) for r in log if r.refused]
    assert not_retried(log) == [], "refused and never sent again"
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert writes_of(log, keys.video_key(sent.call_id)) == 1
    assert pipeline.unfinished_uploads() == [] and pipeline.temp_leftovers() == []
