"""Twilio's side: a recording not served yet, credentials refused, the same webhook delivered again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import keys
from shared.models import Call, VideoStatus

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def test_a_recording_answered_404_for_a_while_is_fetched_once_it_appears(pipeline):
    sent = pipeline.send_call(script=["404", "404", "404", "ok"])
    call = pipeline.wait_ended_one(sent.call_id)
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert [g.behaviour for g in pipeline.twilio.media_gets(sent.recording)] == ["404", "404", "404", "ok"]
    assert call.ingest_attempts == 4 and call.audio_attempts == 1 and call.compositor_attempts == 1
    assert pipeline.object_bytes(keys.recording_key(sent.call_id)) == sent.body


def test_credentials_refused_fail_the_call_at_once_with_the_reason(pipeline):
    sent = pipeline.send_call(script=["401"])
    call = pipeline.wait_ended_one(sent.call_id)
    assert call.video_status == VideoStatus.FAILED
    assert "refused the credentials" in call.video_error_message and "TWILIO_AUTH_TOKEN" in call.video_error_message
    assert len(pipeline.twilio.media_gets(sent.recording)) == 1  # not retried: it cannot get better
    assert call.ingest_attempts == 1 and call.audio_started_at is None
    assert pipeline.keys(f"recordings/{sent.call_id}") == [] and pipeline.keys(f"videos/{sent.call_id}") == []


def test_duplicate_webhooks_make_one_call_and_one_video(pipeline):
    sent = pipeline.send_call(post=False)
    first = pipeline.post_webhook(sent.form)
    assert first.status_code == 202 and first.json()["result"] == "queued"
    # Twilio retrying, a replay, a proxy repeating the POST: at the same time, and later.
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(lambda _: pipeline.post_webhook(sent.form), range(4)))
    call = pipeline.wait_ended_one(sent.call_id)
    late = pipeline.post_webhook(sent.form)

    assert [r.status_code for r in again + [late]] == [200] * 5
    assert {r.json()["result"] for r in again + [late]} == {"duplicate"}
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert Call.select().where(Call.recording_sid == sent.recording.sid).count() == 1
    assert len(pipeline.twilio.media_gets(sent.recording)) == 1
    assert (call.ingest_attempts, call.audio_attempts, call.compositor_attempts) == (1, 1, 1)
    for side in ("caller", "callee"):
        assert len(pipeline.fal_submissions(sent.call_id, side)) == 1
    # The late duplicate did not reopen the finished call.
    assert Call.get_by_id(sent.call_id).video_status == VideoStatus.COMPLETED
