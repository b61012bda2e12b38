"""The recording status webhook, through the Falcon app, on PostgreSQL and the in-process broker.

Callbacks are signed with twilio's real RequestValidator, as Twilio signs them.
"""

import logging
import threading
from urllib.parse import urlencode

import falcon.testing
import pytest
from dramatiq import Message
from twilio.request_validator import RequestValidator

from services.ingest.app import create_app
from services.ingest.webhook import MAX_BODY_BYTES
from shared.models import Call, Stage, VideoStatus
from shared.settings import SettingsError
from tests.services.ingest.conftest import PUBLIC_BASE_URL, WEBHOOK_PATH, post_callback
from tests.support.fake_twilio import account_sid, call_sid


def queued(broker):
    """The messages waiting on the ingest queue, as (actor, kwargs)."""
    messages = [Message.decode(data) for data in broker.queues["ingest"].queue]
    return [(m.actor_name, m.kwargs) for m in messages]


def assert_nothing_changed(broker):
    assert Call.select().count() == 0
    assert queued(broker) == []


def test_a_completed_dual_channel_recording_creates_the_call_and_one_job(client, fake_twilio, stub_broker):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingDuration="37")
    response = post_callback(client, fake_twilio, form)

    assert response.status_code == 202
    assert response.json["result"] == "queued" and response.json["call_id"] == form["CallSid"]
    call = Call.get_by_id(form["CallSid"])
    assert (call.recording_sid, call.recording_url, call.account_sid) == (
        form["RecordingSid"], form["RecordingUrl"], fake_twilio.account_sid,
    )
    assert (call.recording_duration, call.recording_channels) == (37, 2)
    assert (call.video_status, call.stage, call.source) == (VideoStatus.PENDING, Stage.INGEST, "twilio")
    assert call.video_processing_started_at is not None and call.video_error_message is None
    assert queued(stub_broker) == [("download_recording", {"call_id": form["CallSid"]})]


def test_the_same_recording_twice_makes_one_call_and_one_job(client, fake_twilio, stub_broker):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    first = post_callback(client, fake_twilio, form)
    second = post_callback(client, fake_twilio, form)

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json["result"] == "duplicate"
    assert Call.select().count() == 1
    assert len(queued(stub_broker)) == 1


def test_concurrent_duplicates_make_one_call_and_one_job(pg_db, stub_broker, ingest_env, fake_twilio):
    """Twilio's retry racing the original: the database's uniqueness decides, not a read-then-write."""
    app = create_app()
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    barrier = threading.Barrier(6)
    statuses = []

    def deliver():
        client = falcon.testing.TestClient(app)
        barrier.wait()
        statuses.append(post_callback(client, fake_twilio, form).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 5 + [202]
    assert Call.select().count() == 1
    assert len(queued(stub_broker)) == 1


def test_a_second_recording_of_the_same_call_is_acknowledged_and_ignored(client, fake_twilio, stub_broker):
    call = call_sid()
    first = fake_twilio.callback(fake_twilio.add_recording(b"one"), call=call)
    second = fake_twilio.callback(fake_twilio.add_recording(b"two"), call=call)
    assert post_callback(client, fake_twilio, first).status_code == 202
    response = post_callback(client, fake_twilio, second)
    assert response.status_code == 200 and response.json["result"] == "duplicate"
    assert Call.get_by_id(call).recording_sid == first["RecordingSid"]
    assert len(queued(stub_broker)) == 1


def test_the_host_applications_row_for_the_call_is_claimed(client, fake_twilio, stub_broker):
    """The host app made the calls row when the call started; the webhook fills it in, once."""
    call = call_sid()
    Call.insert(id=call, video_status=None, stage=None).execute()
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), call=call)
    assert post_callback(client, fake_twilio, form).status_code == 202
    row = Call.get_by_id(call)
    assert (row.recording_sid, row.video_status, row.stage) == (form["RecordingSid"], VideoStatus.PENDING, Stage.INGEST)
    assert post_callback(client, fake_twilio, form).json["result"] == "duplicate"
    assert len(queued(stub_broker)) == 1


def test_a_forged_signature_is_refused_and_changes_nothing(client, fake_twilio, stub_broker):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    forged = RequestValidator("not-the-auth-token").compute_signature(PUBLIC_BASE_URL + WEBHOOK_PATH, form)
    response = post_callback(client, fake_twilio, form, signature=forged)
    assert response.status_code == 403
    assert_nothing_changed(stub_broker)


def test_an_unsigned_request_is_refused(client, fake_twilio, stub_broker):
    response = post_callback(client, fake_twilio, fake_twilio.callback(), signature="")
    assert response.status_code == 403
    assert_nothing_changed(stub_broker)


def test_a_signature_for_other_fields_is_refused(client, fake_twilio, stub_broker):
    """A genuine signature does not let anyone change a field (here, the RecordingUrl)."""
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    signature = fake_twilio.sign(PUBLIC_BASE_URL + WEBHOOK_PATH, form)
    tampered = {**form, "RecordingDuration": "1"}
    assert post_callback(client, fake_twilio, tampered, signature=signature).status_code == 403
    assert_nothing_changed(stub_broker)


def test_the_signed_url_is_the_public_one_with_the_query(client, fake_twilio, stub_broker):
    """Behind Railway's proxy the app sees another host; PUBLIC_BASE_URL + path + query is what Twilio signed."""
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    signed_with_query = fake_twilio.sign(PUBLIC_BASE_URL + WEBHOOK_PATH + "?tenant=7", form)
    assert post_callback(client, fake_twilio, form, signature=signed_with_query, query="tenant=8").status_code == 403
    assert post_callback(client, fake_twilio, form, signature=signed_with_query, query="tenant=7").status_code == 202
    local_url = fake_twilio.sign("http://falconframework.org" + WEBHOOK_PATH, form)
    assert post_callback(client, fake_twilio, form, signature=local_url).status_code == 403


def test_another_account_is_refused(client, fake_twilio, stub_broker):
    other = account_sid()
    recording = fake_twilio.add_recording(b"mp3")
    url = fake_twilio.recording_url(recording).replace(fake_twilio.account_sid, other)
    response = post_callback(client, fake_twilio, fake_twilio.callback(recording, AccountSid=other, RecordingUrl=url))
    assert response.status_code == 403
    assert "another Twilio account" in response.json["description"]
    assert_nothing_changed(stub_broker)


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda url, fake: url.replace(fake.host, "169.254.169.254"),
        lambda url, fake: url.replace(fake.host, "127.0.0.1:1"),
        lambda url, fake: url.replace("https://", "http://"),
        lambda url, fake: url.replace("/Recordings/", "/Calls/"),
    ],
    ids=["metadata-host", "other-port", "plain-http", "other-path"],
)
def test_a_recording_url_off_the_allow_list_is_refused(client, fake_twilio, stub_broker, rewrite):
    recording = fake_twilio.add_recording(b"mp3")
    form = fake_twilio.callback(recording, RecordingUrl=rewrite(fake_twilio.recording_url(recording), fake_twilio))
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 400
    assert "RecordingUrl" in response.json["description"]
    assert_nothing_changed(stub_broker)
    assert fake_twilio.requests == []


def test_a_mono_recording_fails_the_call_with_a_reason(client, fake_twilio, stub_broker):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingChannels="1")
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 200 and response.json["result"] == "failed"
    call = Call.get_by_id(form["CallSid"])
    assert (call.video_status, call.stage, call.recording_channels) == (VideoStatus.FAILED, Stage.DONE, 1)
    assert "mono" in call.video_error_message and "dual" in call.video_error_message
    assert call.video_processing_completed_at is not None
    assert queued(stub_broker) == []
    assert post_callback(client, fake_twilio, form).json["result"] == "duplicate"


@pytest.mark.parametrize("status, words", [("absent", "absent"), ("failed", "Twilio error 13617")])
def test_absent_and_failed_recordings_fail_the_call_with_a_reason(client, fake_twilio, stub_broker, status, words):
    form = fake_twilio.callback(RecordingStatus=status, RecordingDuration="0", ErrorCode="13617" if status == "failed" else "0")
    del form["RecordingChannels"]
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 200 and response.json["result"] == "failed"
    call = Call.get_by_id(form["CallSid"])
    assert call.video_status == VideoStatus.FAILED and words in call.video_error_message
    assert "nothing to make a video from" in call.video_error_message
    assert queued(stub_broker) == []


def test_in_progress_is_acknowledged_and_ignored(client, fake_twilio, stub_broker):
    form = fake_twilio.callback(RecordingStatus="in-progress", RecordingDuration="-1")
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 200 and response.json["result"] == "ignored"
    assert_nothing_changed(stub_broker)


@pytest.mark.parametrize("missing", ["CallSid", "RecordingSid", "RecordingUrl", "RecordingChannels", "RecordingStatus"])
def test_missing_fields_get_400_with_the_field_named(client, fake_twilio, stub_broker, missing):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    del form[missing]
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 400
    assert f"{missing} is required" in response.json["description"]
    assert_nothing_changed(stub_broker)


def test_malformed_sids_get_400(client, fake_twilio, stub_broker):
    response = post_callback(client, fake_twilio, fake_twilio.callback(CallSid="CA'; DROP TABLE calls; --"))
    assert response.status_code == 400 and "CallSid must be CA" in response.json["description"]
    assert_nothing_changed(stub_broker)


def test_only_small_forms_are_read(client, fake_twilio, stub_broker):
    form = fake_twilio.callback()
    as_json = client.simulate_post(WEBHOOK_PATH, json=form, headers={"X-Twilio-Signature": "x"})
    assert as_json.status_code == 415
    huge = client.simulate_post(
        WEBHOOK_PATH,
        body=urlencode({**form, "Padding": "x" * MAX_BODY_BYTES}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
    )
    assert huge.status_code == 413
    assert_nothing_changed(stub_broker)


def test_a_broker_outage_answers_503_and_keeps_the_call_for_the_sweeper(client, fake_twilio, stub_broker, monkeypatch):
    from shared import contracts

    def broker_down(*args, **kwargs):
        raise ConnectionError("RabbitMQ is down")

    monkeypatch.setattr(contracts, "send", broker_down)
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 503
    call = Call.get_by_id(form["CallSid"])
    assert (call.video_status, call.stage, call.ingest_attempts) == (VideoStatus.PENDING, Stage.INGEST, 0)


def test_a_sharedkey_signature_is_checked_with_the_shared_key(pg_db, stub_broker, ingest_env, fake_twilio):
    ingest_env(TWILIO_WEBHOOK_SHARED_KEY="shared-secret")
    client = falcon.testing.TestClient(create_app())
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    url = PUBLIC_BASE_URL + WEBHOOK_PATH
    header = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    with_token = RequestValidator(fake_twilio.auth_token).compute_signature(url, form, "HMAC_SHA256")
    assert post_callback(client, fake_twilio, form, signature=with_token, headers=header).status_code == 403
    with_key = RequestValidator("shared-secret").compute_signature(url, form, "HMAC_SHA256")
    assert post_callback(client, fake_twilio, form, signature=with_key, headers=header).status_code == 202


def test_signature_checking_is_off_only_when_asked_and_then_says_so(pg_db, stub_broker, ingest_env, fake_twilio, caplog):
    ingest_env(TWILIO_VALIDATE_SIGNATURE="false", TWILIO_AUTH_TOKEN="", PUBLIC_BASE_URL="")
    with caplog.at_level(logging.WARNING, logger="callreel.ingest"):
        client = falcon.testing.TestClient(create_app())
    assert any("signatures are NOT checked" in r.getMessage() for r in caplog.records)
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    assert post_callback(client, fake_twilio, form, signature="").status_code == 202
    # The account and every field are still checked.
    other, recording = account_sid(), fake_twilio.add_recording(b"mp3")
    url = fake_twilio.recording_url(recording).replace(fake_twilio.account_sid, other)
    assert post_callback(client, fake_twilio, fake_twilio.callback(recording, AccountSid=other, RecordingUrl=url), signature="").status_code == 403
    assert post_callback(client, fake_twilio, fake_twilio.callback(CallSid="CA1"), signature="").status_code == 400
    assert Call.select().count() == 1


def test_the_app_refuses_to_start_without_what_it_needs(pg_db, stub_broker, settings_env):
    settings_env(TWILIO_ACCOUNT_SID="")
    with pytest.raises(SettingsError) as error:
        create_app()
    assert {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"} <= {p.split()[0] for p in error.value.problems}


def test_idempotency_holds_on_sqlite_too(sqlite_db, stub_broker, ingest_env, fake_twilio):
    """The embedded mode (``callreel serve``) runs the same statement on SQLite."""
    client = falcon.testing.TestClient(create_app())
    host_row = call_sid()
    Call.insert(id=host_row, video_status=None).execute()
    for call in (host_row, None):
        form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), call=call)
        assert post_callback(client, fake_twilio, form).status_code == 202
        assert post_callback(client, fake_twilio, form).json["result"] == "duplicate"
    assert Call.select().count() == 2
    assert Call.get_by_id(host_row).video_status == VideoStatus.PENDING
    assert len(queued(stub_broker)) == 2
