"""The console's tests: a client of the ingest app with an operator signed in; the app served as deployed."""

from __future__ import annotations

from contextlib import ExitStack

import falcon.testing
import pytest

from services.ingest.app import create_app
from tests.services.ingest.conftest import API_TOKEN
from tests.services.ingest.test_processes import service_env
from tests.support.browser import gunicorn
from tests.support.fake_twilio import account_sid
from tests.support.services import free_port

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def operator_client(pg_db, stub_broker, ingest_env, s3) -> falcon.testing.TestClient:
    """A test client whose requests carry an operator's session cookie (signed in with the API token)."""
    client = falcon.testing.TestClient(create_app())
    signed_in = client.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM)
    client.cookie = {"Cookie": f"callreel_session={signed_in.cookies['callreel_session'].value}"}
    return client


@pytest.fixture
def serve(pg_db, pg_url, rabbitmq_url, s3_server, s3, tmp_path):
    """Starts gunicorn serving the ingest app as deployed, on a free port with these settings more; gives its base URL.

    ``public=True`` points the app's links (PUBLIC_BASE_URL) at this server.
    """
    with ExitStack() as running:

        def start(*, public: bool = False, **more: str) -> str:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = service_env(
                tmp_path, pg_url, rabbitmq_url, port, TWILIO_ACCOUNT_SID=account_sid(), TWILIO_AUTH_TOKEN="t" * 32,
                GUNICORN_THREADS="4", **s3_server.env(s3.bucket), **more,
            )
            if public:
                env["PUBLIC_BASE_URL"] = base
            running.enter_context(gunicorn(env, tmp_path / "gunicorn.log", base))
            return base

        yield start
