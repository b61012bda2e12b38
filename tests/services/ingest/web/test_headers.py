"""Response headers every client relies on (issue 25): the logout cookie's flags, nosniff on JSON."""

import falcon.testing
import pytest

from services.ingest.app import create_app
from tests.services.ingest.conftest import API_TOKEN, WEBHOOK_PATH
from tests.services.ingest.web.test_pages import FORM, csrf_of, login


@pytest.fixture
def web(pg_db, stub_broker, ingest_env, s3):
    return falcon.testing.TestClient(create_app())


def test_the_logout_cookie_is_secure_httponly_and_strict(web):
    cookie = login(web)
    token = csrf_of(web.simulate_get("/ops/calls", headers=cookie).text)
    out = web.simulate_post("/ops/logout", body=f"csrf={token}", headers={**FORM, **cookie})
    assert out.status_code == 303
    header = out.headers["set-cookie"].lower()
    assert "secure" in header and "httponly" in header and "samesite=strict" in header


@pytest.mark.parametrize(
    "method, path, headers",
    [
        ("GET", "/calls", {"Authorization": f"Bearer {API_TOKEN}"}),
        ("GET", "/calls", {}),  # 401, a JSON error
        ("GET", "/healthz", {}),
        ("POST", WEBHOOK_PATH, {"Content-Type": "text/plain"}),  # 415, a JSON error
        ("GET", "/no/such/route", {}),
    ],
)
def test_every_json_response_says_nosniff(web, method, path, headers):
    response = web.simulate_request(method, path, headers=headers)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert response.headers.get("x-content-type-options") == "nosniff"
