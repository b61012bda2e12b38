"""Fixtures of the ingest tests: a fake Twilio over TLS, the settings that point at it, the app."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.support.fake_twilio import FakeTwilio

PUBLIC_BASE_URL = "https://callreel.example.com"
WEBHOOK_PATH = "/twilio/recording-status"
API_TOKEN = "test-api-token-" + "x" * 20


@pytest.fixture
def fake_twilio(tmp_path):
    fake = FakeTwilio(workdir=tmp_path).start()
    yield fake
    fake.stop()


@pytest.fixture
def ingest_env(settings_env, fake_twilio, monkeypatch):
    """Settings for a deployment whose Twilio is the fake one (its CA trusted through SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", fake_twilio.ca_file)

    def apply(**extra):
        values = {
            "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
            "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "TWILIO_RECORDING_HOSTS": fake_twilio.host,
            "CALLREEL_API_TOKEN": API_TOKEN,
            **extra,
        }
        return settings_env(**values)

    apply()
    return apply


@pytest.fixture
def client(pg_db, stub_broker, ingest_env):
    import falcon.testing

    from services.ingest.app import create_app

    return falcon.testing.TestClient(create_app())


@pytest.fixture
def actors(stub_broker):
    """The ingest worker's module, its actor declared on the in-process broker."""
    from services.ingest import actors

    return actors


def post_callback(client, fake: FakeTwilio, form: dict[str, str], *, signature: str | None = None, query: str = "", headers=None):
    """POST a recording status callback as Twilio would, signed unless ``signature`` says otherwise."""
    url = PUBLIC_BASE_URL + WEBHOOK_PATH + (f"?{query}" if query else "")
    sent = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature != "":
        sent["X-Twilio-Signature"] = signature or fake.sign(url, form)
    sent.update(headers or {})
    return client.simulate_post(WEBHOOK_PATH, body=urlencode(form), headers=sent, query_string=query or None)
