"""Wrong API tokens are throttled per client address, on the API and on the login form (issue 25).

The count is in the database, shared by every worker, replica and restart; the
client address is the trusted proxy's; the right credential is never refused.
"""

from __future__ import annotations

import subprocess
import sys

import falcon.testing
import pytest

from shared.settings import SettingsError, load_settings
from shared.throttle_store import AuthFailure
from tests.services.ingest.conftest import API_TOKEN
from tests.support.env import process_env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ATTACKER, OPERATOR = "203.0.113.9", "198.51.100.7"
PROXY = "10.0.0.2"  # Railway's edge, as the app sees it


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The shared throttle's clock, at the start of a window, moved by the test: a loaded machine taking
    seconds between two requests cannot carry them into another window, and no test sleeps."""
    from services.ingest.web import throttle

    clock = Clock()
    assert clock.now % 2 == 0  # the start of a 2 s window
    monkeypatch.setattr(throttle, "wall_clock", clock)
    return clock


@pytest.fixture
def make_app(pg_db, stub_broker, ingest_env, clock):
    """A new app (a worker, a replica, or the service after a restart) on the same database."""
    from services.ingest.app import create_app

    def make(**extra) -> falcon.testing.TestClient:
        ingest_env(AUTH_MAX_FAILURES="3", AUTH_FAILURE_WINDOW="2", **extra)
        return falcon.testing.TestClient(create_app())

    return make


@pytest.fixture
def app(make_app):
    return make_app()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_refuses_an_address_after_too_many_wrong_tokens(app, clock):
    for _ in range(3):
        assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    blocked = app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) == 2  # the whole window: the clock stands at its start
    assert "try again" in blocked.json["description"]
    # Another address, and visitors without any token, are not counted against it.
    assert app.simulate_get("/calls", headers=bearer(API_TOKEN), remote_addr=OPERATOR).status_code == 200
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=OPERATOR).status_code == 401
    clock.now += 2.1  # the next window
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401


def test_the_right_token_is_never_throttled(app):
    for _ in range(5):
        app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER)
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 429
    # The host application behind the same address keeps working.
    assert app.simulate_get("/calls", headers=bearer(API_TOKEN), remote_addr=ATTACKER).status_code == 200
    signed_in = app.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM, remote_addr=ATTACKER)
    assert signed_in.status_code == 303 and "callreel_session" in signed_in.cookies


def test_the_api_and_the_login_form_are_counted_apart(app):
    """The host application's machine token and the people's login form: neither locks the other out."""
    for _ in range(4):
        app.simulate_post("/ops/login", body="token=guess", headers=FORM, remote_addr=ATTACKER)
    blocked = app.simulate_post("/ops/login", body="token=guess", headers=FORM, remote_addr=ATTACKER)
    assert blocked.status_code == 429 and "callreel_session" not in blocked.cookies
    assert "Too many wrong tokens" in blocked.text and int(blocked.headers["Retry-After"]) >= 1
    # A wrong bearer token from the same address is still only a 401: the API's count is its own.
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    # A session cookie never meets the throttle at all.
    cookie = app.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM, remote_addr=ATTACKER).cookies
    session = {"Cookie": f"callreel_session={cookie['callreel_session'].value}"}
    assert app.simulate_get("/ops/calls", headers=session, remote_addr=ATTACKER).status_code == 200


def test_behind_the_proxy_each_client_is_counted_by_its_forwarded_address(make_app):
    app = make_app(TRUSTED_PROXY_HOPS="1")

    def via_proxy(client: str, token: str, claimed: str = ""):
        forwarded = f"{claimed}, {client}" if claimed else client
        return app.simulate_get("/calls", headers={**bearer(token), "X-Forwarded-For": forwarded}, remote_addr=PROXY)

    for _ in range(3):
        assert via_proxy(ATTACKER, "guess").status_code == 401
    assert via_proxy(ATTACKER, "guess").status_code == 429
    # Another client behind the same proxy is not locked out, even with a wrong token.
    assert via_proxy(OPERATOR, "guess").status_code == 401
    # The attacker cannot pick its own address: the proxy appends the real one last.
    assert via_proxy(ATTACKER, "guess", claimed=OPERATOR).status_code == 429
    assert AuthFailure.select().where(AuthFailure.client == PROXY).count() == 0


def test_without_trusted_proxies_the_forwarded_header_is_ignored(app):
    for n in range(4):
        spoofed = {**bearer("guess"), "X-Forwarded-For": f"192.0.2.{n}"}
        answer = app.simulate_get("/calls", headers=spoofed, remote_addr=ATTACKER)
    assert answer.status_code == 429


def test_the_count_is_shared_by_workers_and_survives_a_restart(make_app):
    first, second = make_app(), make_app()
    assert first.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    assert second.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    assert first.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    restarted = make_app()
    assert restarted.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 429
    assert second.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 429


def test_old_windows_are_pruned(app, clock):
    app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER)
    clock.now += 4.1  # two windows later
    app.simulate_get("/calls", headers=bearer("guess"), remote_addr=OPERATOR)
    assert [row.client for row in AuthFailure.select()] == [OPERATOR]


def test_the_count_works_on_sqlite_too(sqlite_db, stub_broker, ingest_env, clock):
    from services.ingest.app import create_app

    ingest_env(AUTH_MAX_FAILURES="1", AUTH_FAILURE_WINDOW="60")
    app = falcon.testing.TestClient(create_app())
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 401
    assert app.simulate_get("/calls", headers=bearer("guess"), remote_addr=ATTACKER).status_code == 429
    assert app.simulate_get("/calls", headers=bearer(API_TOKEN), remote_addr=ATTACKER).status_code == 200


@pytest.mark.parametrize("name", ["CALLREEL_API_TOKEN"])
def test_a_token_shorter_than_32_characters_is_refused_at_start(name):
    with pytest.raises(SettingsError) as info:
        load_settings({name: "x" * 31})
    assert info.value.problems == [f"{name} must be at least 32 characters long (got 31)"]
    assert load_settings({name: "x" * 32}).api_token == "x" * 32


def test_the_service_refuses_to_start_with_a_short_token_in_one_clear_line(tmp_path):
    env = process_env(CALLREEL_API_TOKEN="short")
    script = "from shared.settings import get_settings; get_settings()"
    # What deploy/gunicorn.conf.py and the CLI print: the SettingsError's text.
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\ntry:\n    {script}\nexcept Exception as exc:\n    print(exc, file=sys.stderr); sys.exit(2)"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "CALLREEL_API_TOKEN must be at least 32 characters long (got 5)" in done.stderr
    assert len([line for line in done.stderr.splitlines() if "CALLREEL_API_TOKEN" in line]) == 1
