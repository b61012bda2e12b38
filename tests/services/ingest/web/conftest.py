"""The console's tests: a client of the ingest app with an operator signed in."""

from __future__ import annotations

import falcon.testing
import pytest

from services.ingest.app import create_app
from tests.services.ingest.conftest import API_TOKEN

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def operator_client(pg_db, stub_broker, ingest_env, s3) -> falcon.testing.TestClient:
    """A test client whose requests carry an operator's session cookie (signed in with the API token)."""
    client = falcon.testing.TestClient(create_app())
    signed_in = client.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM)
    client.cookie = {"Cookie": f"callreel_session={signed_in.cookies['callreel_session'].value}"}
    return client
