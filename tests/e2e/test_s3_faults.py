"""S3 refusing requests (503 SlowDown) or away altogether: boto3's retries and the actors' own get every call through.

The refusals come from the fault proxy every process reaches S3 through. They
hit the workers' requests; presigned URLs fal fetches are left alone here (a
refused fetch fails a fal job, which is fal's failure mode, tested elsewhere).
Each test checks where the refusals landed (which stage's requests met them)
and that every refused request was sent again and answered: nothing skipped.

An outage (the port closed) lasts a minute: the harness's
STORAGE_OUTAGE_TOLERANCE is 90 s, so every stage waits it out (two calls meet
the one outage, at ingest and past it: a minute waited once, not twice); one
shorter than the outage ends the call with a reason naming the upload that failed.
"""

from __future__ import annotations

import re

import pytest

from shared import keys
from shared.models import Call, Stage, VideoStatus
from tests.support.s3_proxy import Request, not_retried, writes_of
from tests.support.wait import wait_for

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


OUTAGE = 60.0


def test_s3_away_for_a_minute_as_one_webhook_arrives_and_another_call_is_past_ingest(pipeline):
    """D4: one minute-long outage met by two calls at once, each waiting it out where it is.

    ``arriving``: its webhook comes during the outage, so the recording's upload meets it; ingest retries
    with backoff past it. ``later``: already past ingest, so the stage it is in (audio, whose own budget
    is 2 retries, generation or compositor) meets it; every stage outlasts it, not only ingest.
    """
    later = pipeline.send_call()
    wait_for(lambda: Call.get_by_id(later.call_id).stage not in (None, Stage.INGEST), timeout=60, interval=0.02, what="the call past ingest")
    arriving = pipeline.send_call(post=False)
    pipeline.proxy.down_for(OUTAGE)
    assert pipeline.post_webhook(arriving.form).status_code == 202
    ended = pipeline.wait_ended([arriving.call_id, later.call_id], timeout=OUTAGE + 120)

    log = pipeline.proxy.log()
    for sent in (arriving, later):
        assert ended[sent.call_id].video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
        assert writes_of(log, keys.video_key(sent.call_id)) == 1
    assert pipeline.object_bytes(keys.recording_key(arriving.call_id)) == arriving.body
    ingest = pipeline.workers["ingest"].log()
    # The failure is named for what failed (the upload), not blamed on Twilio's download.
    assert f"the object store failed the upload of {keys.recording_key(arriving.call_id)}" in ingest
    assert "download attempt failed" not in ingest
    later_stages = "".join(pipeline.workers[s].log() for s in ("audio", "generation", "compositor"))
    assert "the object store failed the" in later_stages
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
