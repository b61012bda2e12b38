"""Forged and malformed webhooks change nothing: no call, no job, no request to Twilio."""

from __future__ import annotations

import os

import pytest

from shared.models import Call, VideoStatus
from tests.e2e.harness import PUBLIC_BASE_URL, WEBHOOK_PATH
from tests.support.fake_twilio import account_sid, call_sid

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def test_forged_and_malformed_webhooks_change_nothing(pipeline):
    twilio = pipeline.twilio
    recording = twilio.add_recording(pipeline.recording())
    good = twilio.callback(recording)
    other_token = os.urandom(16).hex()
    other = account_sid()
    attempts = {
        "no signature": dict(form=good, signature=""),
        "forged signature": dict(form=good, signature="bm90IGEgc2lnbmF0dXJl"),
        "signed with another account's token": dict(form=good, signature=twilio.sign(PUBLIC_BASE_URL + WEBHOOK_PATH, good, other_token)),
        "signature for other fields": dict(form={**good, "RecordingDuration": "999"}, signature=twilio.sign(PUBLIC_BASE_URL + WEBHOOK_PATH, good)),
        "signature for another URL": dict(form=good, signature=twilio.sign("https://evil.example.com" + WEBHOOK_PATH, good)),
        "another account (signed)": dict(form={**good, "AccountSid": other, "RecordingUrl": good["RecordingUrl"].replace(good["AccountSid"], other)}),
        "no CallSid (signed)": dict(form={k: v for k, v in good.items() if k != "CallSid"}),
        "path in CallSid (signed)": dict(form={**good, "CallSid": "../../etc/passwd"}),
        "RecordingUrl elsewhere (signed)": dict(form={**good, "RecordingUrl": f"https://evil.example.com/2010-04-01/Accounts/{good['AccountSid']}/Recordings/{good['RecordingSid']}"}),
        "RecordingUrl over http (signed)": dict(form={**good, "RecordingUrl": good["RecordingUrl"].replace("https://", "http://")}),
        "channels not a number (signed)": dict(form={**good, "RecordingChannels": "two"}),
        "not a form": dict(form=good, body='{"CallSid": "x"}', content_type="application/json"),
        "huge body": dict(form=good, body="A=" + "x" * 200_000),
        "not UTF-8": dict(form=good, body=b"CallSid=\xff\xfe"),
    }
    answers = {}
    for name, request in attempts.items():
        response = pipeline.post_webhook(**request)
        answers[name] = response.status_code
    assert all(400 <= code < 500 for code in answers.values()), answers
    assert answers["forged signature"] == answers["no signature"] == 403
    assert answers["another account (signed)"] == 403
    assert answers["no CallSid (signed)"] == answers["RecordingUrl elsewhere (signed)"] == 400

    # Nothing happened anywhere.
    assert Call.select().where(Call.recording_sid == recording.sid).count() == 0
    assert Call.select().where(Call.id == good["CallSid"]).count() == 0
    assert pipeline.twilio.media_gets(recording) == []
    assert good["CallSid"] not in pipeline.workers["ingest"].log()  # no job ever reached the worker

    # The genuine one, after all that, goes through.
    assert pipeline.post_webhook(good).status_code == 202
    assert pipeline.wait_ended_one(good["CallSid"]).video_status == VideoStatus.COMPLETED


def test_a_mono_or_failed_recording_is_recorded_failed_at_the_door(pipeline):
    """Twilio says the recording is mono, or could not be made: the call is stored failed with why, no job is sent."""
    mono = pipeline.send_call(post=False, RecordingChannels="1")
    absent = pipeline.twilio.callback(None, call=call_sid(), RecordingStatus="absent")
    for form in (mono.form, absent):
        response = pipeline.post_webhook(form)
        assert response.status_code == 200 and response.json()["result"] == "failed", response.text
    assert "mono" in Call.get_by_id(mono.call_id).video_error_message
    assert "absent" in Call.get_by_id(absent["CallSid"]).video_error_message
    assert all(Call.get_by_id(c).video_status == VideoStatus.FAILED for c in (mono.call_id, absent["CallSid"]))
    assert pipeline.twilio.media_gets(mono.recording) == []
    assert mono.call_id not in pipeline.workers["ingest"].log()


def test_a_locked_calls_table_answers_503_within_twilios_budget_and_twilios_retry_finishes_the_call(pipeline):
    """The ``calls`` table held by another session (a migration, a stuck transaction): the webhook gives up at
    DB_LOCK_TIMEOUT (the deployment's default) with 503 + Retry-After, /healthz says the database is unavailable,
    and Twilio's next delivery, once the lock is gone, makes the call."""
    import time

    import httpx
    import psycopg2

    sent = pipeline.send_call(post=False)
    holder = psycopg2.connect(pipeline.pg_url)
    try:
        holder.cursor().execute("BEGIN; LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        refused = pipeline.post_webhook(sent.form)
        took = time.monotonic() - started
        health = httpx.get(f"{pipeline.base_url}/healthz", timeout=20)
    finally:
        holder.rollback()
        holder.close()
    assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text
    assert took < 15, f"Twilio gives up at 15 s; the webhook answered after {took:.1f} s"
    assert health.status_code == 503 and health.json()["database"].startswith("unavailable"), health.text
    assert httpx.get(f"{pipeline.base_url}/healthz", timeout=20).status_code == 200

    assert pipeline.post_webhook(sent.form).status_code == 202  # Twilio's retry
    call = pipeline.wait_ended_one(sent.call_id)
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
