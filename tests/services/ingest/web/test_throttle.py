"""Wrong API tokens are throttled per client address, on the API and on the login form alike."""

from __future__ import annotations

import time

import falcon.testing
import pytest

from services.ingest.web.throttle import FailureThrottle
from tests.services.ingest.conftest import API_TOKEN

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ATTACKER, OPERATOR = "203.0.113.9", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_waits_until_its_oldest_failure_leaves_the_window():
    clock = Clock()
    throttle = FailureThrottle(limit=3, window=60, clock=clock)
    for _ in range(2):
        throttle.failed("a")
        clock.now += 10
    assert throttle.retry_after("a") is None
    throttle.failed("a")  # three failures, at 1000, 1010 and 1020
    assert throttle.retry_after("a") == 40  # the first leaves the window at 1060
    assert throttle.retry_after("b") is None  # another address is not affected
    clock.now = 1060.5
    assert throttle.retry_after("a") is None
    throttle.failed("a")
    assert throttle.retry_after("a") == 10


def test_the_table_of_addresses_is_bounded(monkeypatch):
    import services.ingest.web.throttle as throttle_module

    monkeypatch.setattr(throttle_module, "MAX_CLIENTS", 3)
    throttle = FailureThrottle(limit=1, window=60, clock=Clock())
    for client in "abcd":
        throttle.failed(client)
    assert throttle.retry_after("a") is None  # the oldest address was forgotten
    assert all(throttle.retry_after(c) for c in "bcd")


@pytest.fixture
def app(pg_db, stub_broker, ingest_env):
    from services.ingest.app import create_app

    ingest_env(AUTH_MAX_FAILURES="3", AUTH_FAILURE_WINDOW="2")
    return falcon.testing.TestClient(create_app())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_refuses_an_address_after_too_many_wrong_tokens(app):
    for _ in range(3):
        assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    blocked = app.simulate_get("/calls", headers=bearer(API_TOKEN), remote_addr=ATTACKER)
    assert blocked.status_code == 429  # even the right token: a blocked client learns nothing
    assert 1 <= int(blocked.headers["Retry-After"]) <= 2
    assert "try again" in blocked.json["description"]
    # Another address, and visitors without any token, are not counted against it.
    assert app.simulate_get("/calls", headers=bearer(API_TOKEN), remote_addr=OPERATOR).status_code == 200
    time.sleep(2.1)
    assert app.simulate_get("/calls", headers=bearer(API_TOKEN), remote_addr=ATTACKER).status_code == 200


def test_the_login_form_shares_the_count(app):
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    for _ in range(2):
        wrong = app.simulate_post("/ops/login", body="token=guess", headers=FORM, remote_addr=ATTACKER)
        assert wrong.status_code == 401
    blocked = app.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM, remote_addr=ATTACKER)
    assert blocked.status_code == 429 and "callreel_session" not in blocked.cookies
    assert "Too many wrong tokens" in blocked.text and int(blocked.headers["Retry-After"]) >= 1
    assert app.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM, remote_addr=OPERATOR).status_code == 303
    time.sleep(2.1)
    assert app.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM, remote_addr=ATTACKER).status_code == 303
