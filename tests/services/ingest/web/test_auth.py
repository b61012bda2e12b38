"""Every route of the ingest app asks for a credential unless it is one of the few public ones."""

import falcon
import falcon.inspect
import falcon.testing
import pytest

from services.ingest.app import create_app
from services.ingest.web.auth import PUBLIC, SESSION, Authentication, TokenAuth, public
from services.ingest.web.session import SessionSigner
from tests.services.ingest.conftest import API_TOKEN

# The routes anyone may call; a route that joins them must be added here, on purpose.
# The share page and its files are public: the signed token in the path is their credential (test_share.py).
# The voice-agent platforms' webhooks check their platform's signature instead (tests/services/ingest/platforms/).
PLATFORM_WEBHOOKS = {"/webhooks/vapi", "/webhooks/retell", "/webhooks/elevenlabs"}
PUBLIC_ROUTES = {"/twilio/recording-status", "/healthz", "/ops/login", "/ops/static/{name}", "/", "/ops", "/v/{token}", "/v/{token}/{name}"} | PLATFORM_WEBHOOKS
PARAMS = {"{call_id}": "CA" + "1" * 32, "{key:path}": f"videos/CA{'1' * 32}.mp4", "{name}": "operator.css", "{token}": "A" * 75, "{side}": "caller"}


def concrete(template: str) -> str:
    for placeholder, value in PARAMS.items():
        template = template.replace(placeholder, value)
    assert "{" not in template, f"no sample value for a field of {template}"
    return template


def routes(app: falcon.App) -> list[tuple[str, str]]:
    return [
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    ]


def refused(response: falcon.testing.Result) -> bool:
    """The answers to a request without credentials: 401 with a Bearer challenge, or off to the login form."""
    if response.status_code == 401:
        return response.headers.get("www-authenticate", "").startswith("Bearer")
    return response.status_code == 303 and response.headers["location"].startswith("/ops/login?next=")


def test_every_route_but_the_public_ones_refuses_a_request_without_credentials(client):
    app = client.app
    walked = routes(app)
    assert {path for path, _ in walked} >= PUBLIC_ROUTES
    assert len(walked) > len(PUBLIC_ROUTES)
    for path, method in walked:
        response = client.simulate_request(method, concrete(path))
        if path in PUBLIC_ROUTES:
            assert not refused(response), f"{method} {path} is public but answered {response.status}"
        else:
            assert refused(response), f"{method} {path} answered {response.status} without credentials"


def test_every_protected_route_lets_its_credential_through(client):
    login = client.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers={"Content-Type": "application/x-www-form-urlencoded"})
    credentials = {
        "token": {"Authorization": f"Bearer {API_TOKEN}"},
        "session": {"Cookie": f"callreel_session={login.cookies['callreel_session'].value}"},
    }
    for path, method in routes(client.app):
        if path in PUBLIC_ROUTES:
            continue
        answers = {name: client.simulate_request(method, concrete(path), headers=sent) for name, sent in credentials.items()}
        assert any(not refused(answer) for answer in answers.values()), f"{method} {path} refuses every credential"


class Unmarked:
    def on_get(self, req, resp):
        resp.media = {"secret": True}


class Paged:
    access = SESSION

    def on_get(self, req, resp):
        resp.media = {"session": req.context.session.id}


class NeverThrottled:
    """A throttle that counts nothing: these tests are about which credential a route asks for."""

    def count_failure(self, client: str) -> int | None:
        return None


@pytest.fixture
def tiny():
    signer = SessionSigner(API_TOKEN, 60)
    app = falcon.App(middleware=[Authentication(TokenAuth(API_TOKEN, NeverThrottled()), signer)])
    app.add_route("/unmarked", Unmarked())
    app.add_route("/open", public(Unmarked()))
    app.add_route("/ops/paged", Paged())
    return falcon.testing.TestClient(app), signer


def test_a_resource_that_says_nothing_needs_the_token(tiny):
    client, _ = tiny
    assert client.simulate_get("/unmarked").status_code == 401
    assert client.simulate_get("/unmarked", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.simulate_get("/unmarked", headers={"Authorization": f"Bearer {API_TOKEN}"}).json == {"secret": True}
    assert client.simulate_get("/open").json == {"secret": True}
    assert Unmarked().__dict__.get("access") is None and public(Unmarked()).access == PUBLIC


def test_a_session_resource_gets_the_session_in_its_context(tiny):
    client, signer = tiny
    assert client.simulate_get("/ops/paged").headers["location"] == "/ops/login?next=/ops/paged"
    cookie, session = signer.issue()
    answer = client.simulate_get("/ops/paged", headers={"Cookie": f"callreel_session={cookie}"})
    assert answer.json == {"session": session.id}
