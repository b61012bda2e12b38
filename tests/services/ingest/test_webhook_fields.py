"""Hardening of the webhook's fields: what a correct signature does not make acceptable (issue 25).

Each request here is signed exactly as Twilio signs it, so the refusals are the
field checks', never the signature's.
"""

import datetime as dt
import email.utils
from urllib.parse import urlencode

import pytest

from shared.models import Call
from tests.services.ingest.conftest import PUBLIC_BASE_URL, WEBHOOK_PATH, post_callback


def post_pairs(client, fake, pairs: list[tuple[str, str]]):
    """POST fields given as pairs (a name may repeat), signed as Twilio signs a repeated field."""
    url = PUBLIC_BASE_URL + WEBHOOK_PATH
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    from twilio.request_validator import RequestValidator

    class Multi(dict):
        def getall(self, name):
            return self[name]

    signature = RequestValidator(fake.auth_token).compute_signature(url, Multi(grouped))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return client.simulate_post(WEBHOOK_PATH, body=urlencode(pairs), headers=headers)


@pytest.mark.parametrize("prefix", ["\x00", " ", "\t", "\n"], ids=["nul", "space", "tab", "newline"])
def test_a_recording_url_with_a_leading_control_character_or_blank_is_400(client, fake_twilio, stub_broker, prefix):
    recording = fake_twilio.add_recording(b"mp3")
    form = fake_twilio.callback(recording, RecordingUrl=prefix + fake_twilio.recording_url(recording))
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 400, response.text
    assert "RecordingUrl" in response.json["description"]
    assert Call.select().count() == 0


@pytest.mark.parametrize("field", ["CallSid", "RecordingStatus", "RecordingSource", "RecordingDuration", "Extra"])
@pytest.mark.parametrize("junk", ["\x7f", "\x00", " ", "\r\n"], ids=["del", "nul", "space", "crlf"])
def test_control_characters_and_surrounding_blanks_in_any_field_are_400(client, fake_twilio, stub_broker, field, junk):
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    form[field] = form.get(field, "value") + junk
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 400, response.text
    assert field in response.json["description"]
    assert Call.select().count() == 0


def test_a_repeated_field_is_400_even_when_signed(client, fake_twilio, stub_broker):
    recording = fake_twilio.add_recording(b"mp3")
    form = fake_twilio.callback(recording)
    pairs = list(form.items()) + [("RecordingChannels", "1")]
    response = post_pairs(client, fake_twilio, pairs)
    assert response.status_code == 400, response.text
    assert "RecordingChannels" in response.json["description"] and "more than once" in response.json["description"]
    assert Call.select().count() == 0


def test_a_well_formed_callback_still_passes(client, fake_twilio, stub_broker):
    recording = fake_twilio.add_recording(b"mp3")
    response = post_pairs(client, fake_twilio, list(fake_twilio.callback(recording).items()))
    assert response.status_code == 202, response.text


def _rfc2822(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment)


def test_a_recording_older_than_webhook_max_age_is_refused(client, fake_twilio, stub_broker):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25)
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingStartTime=_rfc2822(old))
    response = post_callback(client, fake_twilio, form)
    assert response.status_code == 400, response.text
    assert "WEBHOOK_MAX_AGE" in response.json["description"]
    assert Call.select().count() == 0


def test_webhook_max_age_is_a_setting(pg_db, stub_broker, ingest_env, fake_twilio):
    import falcon.testing

    from services.ingest.app import create_app

    ingest_env(WEBHOOK_MAX_AGE="600")
    client = falcon.testing.TestClient(create_app())
    moment = dt.datetime.now(dt.timezone.utc)
    fresh = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingStartTime=_rfc2822(moment - dt.timedelta(seconds=60)))
    stale = fake_twilio.callback(fake_twilio.add_recording(b"mp3"), RecordingStartTime=_rfc2822(moment - dt.timedelta(seconds=900)))
    assert post_callback(client, fake_twilio, fresh).status_code == 202
    assert post_callback(client, fake_twilio, stale).status_code == 400


def test_the_fake_twilio_callback_is_recent(fake_twilio):
    started = email.utils.parsedate_to_datetime(fake_twilio.callback()["RecordingStartTime"])
    assert abs((dt.datetime.now(dt.timezone.utc) - started).total_seconds()) < 3600
