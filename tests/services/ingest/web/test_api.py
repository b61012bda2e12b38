"""``GET /calls/{callId}`` (bearer token, presigned URLs from moto's S3 over HTTP) and ``GET /healthz``."""

import datetime as dt
import urllib.request

import falcon
import falcon.testing
import pytest

from services.ingest.app import create_app
from services.ingest.health import HealthResource
from shared import keys
from shared.models import Call, SideState, Stage, VideoStatus
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call
from tests.support.fake_twilio import call_sid
from tests.support.objects import put
from tests.support.services import free_port

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def api(pg_db, stub_broker, ingest_env, s3):
    return falcon.testing.TestClient(create_app())


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_a_finished_call_with_its_timings_and_presigned_videos(api, s3):
    call = call_sid()
    put(s3, keys.video_key(call), b"final video", "video/mp4")
    put(s3, keys.segment_video_key(call, "caller", 0), b"caller video", "video/mp4")
    t0 = dt.datetime(2026, 11, 26, 3, 0, 0)
    make_call(
        call, recording_sid="RE" + "1" * 32,
        recording_duration=61,
        recording_channels=2,
        video_status=VideoStatus.PARTIAL,
        stage=Stage.DONE,
        video_error_message="callee: fal job failed twice",
        video_url=s3.object_url(keys.video_key(call)),
        caller_video_url=s3.object_url(keys.segment_video_key(call, "caller", 0)),
        caller_state=SideState.GENERATED,
        callee_state=SideState.FAILED,
        callee_error="fal job failed twice",
        ingest_started_at=t0,
        ingest_finished_at=t0 + dt.timedelta(seconds=2.5),
        ingest_attempts=2,
        audio_started_at=t0 + dt.timedelta(seconds=3),
        video_processing_started_at=t0,
        video_processing_completed_at=t0 + dt.timedelta(seconds=90),
        video_processing_duration=90,
    )
    response = api.simulate_get(f"/calls/{call}", headers=AUTH)

    assert response.status_code == 200
    body = response.json
    assert (body["id"], body["status"], body["stage"]) == (call, "partial", "done")
    assert body["error"] == "callee: fal job failed twice"
    assert body["stages"]["ingest"] == {
        "state": "done", "started_at": "2026-11-26T03:00:00Z", "finished_at": "2026-11-26T03:00:02Z", "seconds": 2.5, "attempts": 2,
    }
    assert body["stages"]["audio"]["seconds"] is None and body["stages"]["compositor"]["started_at"] is None
    # The audio stage started and never finished before the call ended partial; the compositor never ran.
    assert (body["stages"]["audio"]["state"], body["stages"]["compositor"]["state"]) == ("unfinished", "skipped")
    assert list(body["stages"]) == ["ingest", "audio", "generation", "compositor"]
    assert body["segments"] == []
    assert body["processing"]["seconds"] == 90
    assert body["recording"] == {"sid": "RE" + "1" * 32, "duration": 61, "channels": 2, "format": "mp3"}
    assert body["sides"]["callee"]["state"] == "failed" and body["sides"]["callee"]["video_url"] is None
    assert response.headers["cache-control"] == "no-store"
    # The URLs are presigned, and they work.
    assert "X-Amz-Signature" in body["video_url"]
    assert fetch(body["video_url"]) == b"final video"
    assert fetch(body["sides"]["caller"]["video_url"]) == b"caller video"


def test_a_new_call_has_no_video_yet(api):
    call = call_sid()
    make_call(call, video_status=VideoStatus.PENDING, stage=Stage.INGEST)
    body = api.simulate_get(f"/calls/{call}", headers=AUTH).json
    assert body["status"] == "pending" and body["video_url"] is None
    assert body["sides"]["caller"] == {"state": "pending", "error": None, "duration": None, "video_url": None}


def test_only_this_calls_videos_are_ever_presigned(api, s3):
    call, other = call_sid(), call_sid()
    make_call(call, video_url=s3.object_url(keys.video_key(other)), caller_video_url="https://elsewhere.example/x.mp4")
    body = api.simulate_get(f"/calls/{call}", headers=AUTH).json
    assert body["video_url"] is None and body["sides"]["caller"]["video_url"] is None


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_TOKEN}"}, {"Authorization": API_TOKEN}],
    ids=["none", "wrong-token", "wrong-scheme", "no-scheme"],
)
def test_the_api_needs_the_bearer_token(api, headers):
    call = call_sid()
    make_call(call)
    response = api.simulate_get(f"/calls/{call}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "status" not in response.json


def test_without_a_configured_token_the_api_is_off(pg_db, stub_broker, ingest_env):
    ingest_env(CALLREEL_API_TOKEN="")
    client = falcon.testing.TestClient(create_app())
    call = call_sid()
    make_call(call)
    assert client.simulate_get(f"/calls/{call}", headers={"Authorization": "Bearer "}).status_code == 403


def test_unknown_and_malformed_call_ids(api):
    assert api.simulate_get(f"/calls/{call_sid()}", headers=AUTH).status_code == 404
    response = api.simulate_get("/calls/CA..evil", headers=AUTH)
    assert response.status_code == 400 and "CallSid" in response.json["description"]


def test_healthz_reports_database_and_broker(api):
    response = api.simulate_get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_is_503_when_the_database_is_down(stub_broker, ingest_env, settings_env):
    from shared.db import init_database

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings_env(DATABASE_URL=url)
    init_database(url, force=True)
    client = falcon.testing.TestClient(create_app())
    response = client.simulate_get("/healthz")
    assert response.status_code == 503
    assert response.json["database"].startswith("unavailable") and response.json["broker"] == "ok"
    # Any other route answers 503 too, not a stack trace.
    assert client.simulate_get(f"/calls/{call_sid()}", headers=AUTH).status_code == 503


@pytest.mark.rabbitmq
def test_healthz_checks_a_real_rabbitmq(pg_db, rabbitmq_url):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    def app_with(url):
        app = falcon.App()
        broker = RabbitmqBroker(url=url + "?connection_attempts=1&retry_delay=0")
        app.add_route("/healthz", HealthResource(lambda: broker))
        return falcon.testing.TestClient(app), broker

    client, broker = app_with(rabbitmq_url)
    try:
        assert client.simulate_get("/healthz").json == {"status": "ok", "database": "ok", "broker": "ok"}
    finally:
        broker.close()
    client, broker = app_with(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    response = client.simulate_get("/healthz")
    assert response.status_code == 503 and response.json["broker"].startswith("unavailable")



def test_healthz_is_503_while_the_calls_table_is_locked_as_a_webhook_would_meet_it(stub_broker, ingest_env, pg_db, pg_url, settings_env):
    import time

    import psycopg2

    settings_env(DB_LOCK_TIMEOUT="1")
    client = falcon.testing.TestClient(create_app())  # the app's own pooled connections, made with the timeouts
    holder = psycopg2.connect(pg_url)
    try:
        holder.cursor().execute("BEGIN; LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        locked = client.simulate_get("/healthz")
        took = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert locked.status_code == 503 and locked.json["database"].startswith("unavailable"), locked.json
    assert took < 10  # the lock timeout, not the holder, ended the wait
    assert client.simulate_get("/healthz").json["database"] == "ok"
    assert Call.select().count() == 0  # the check wrote nothing


@pytest.mark.rabbitmq
def test_healthz_reconnects_a_broker_connection_that_missed_its_heartbeats(pg_db, rabbitmq_url, caplog):
    import time

    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    # A 1 s heartbeat and nothing read for 5 s: RabbitMQ closes the idle connection, as it did after
    # 2 idle minutes with the default heartbeat, while the broker itself is up.
    broker = RabbitmqBroker(url=rabbitmq_url + "?heartbeat=1")
    app = falcon.App()
    app.add_route("/healthz", HealthResource(lambda: broker))
    client = falcon.testing.TestClient(app)
    try:
        assert client.simulate_get("/healthz").status_code == 200
        time.sleep(5)
        answers = [client.simulate_get("/healthz") for _ in range(5)]
    finally:
        broker.close()
    assert [a.status_code for a in answers] == [200] * 5, [a.json for a in answers]
    assert "checking again over a new one" in caplog.text  # the first probe did meet the dropped connection
