"""The ingest service as it is deployed: gunicorn with deploy/gunicorn.conf.py and the Dramatiq CLI worker,
real processes on loopback, with PostgreSQL, RabbitMQ, moto's S3 server and the fake Twilio.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.services.ingest.conftest import API_TOKEN, WEBHOOK_PATH
from tests.support.env import BIN, process_env
from tests.support.processes import stop_group
from tests.support.services import free_port
from tests.support.wait import log_tail, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

ROOT = Path(__file__).resolve().parents[3]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the master (it stops its own children); SIGKILL to the whole group if it hangs."""
    stop_group(process)


@pytest.fixture
def deployment_env(pg_db, pg_url, rabbitmq_url, s3_server, s3, fake_twilio, tmp_path):
    """What an operator sets for the ingest service and its worker."""
    port = free_port()
    env = service_env(
        tmp_path, pg_url, rabbitmq_url, port,
        TWILIO_ACCOUNT_SID=fake_twilio.account_sid,
        TWILIO_AUTH_TOKEN=fake_twilio.auth_token,
        TWILIO_RECORDING_HOSTS=fake_twilio.host,
        GUNICORN_THREADS="2",
        SSL_CERT_FILE=fake_twilio.ca_file,
        **s3_server.env(s3.bucket),
    )
    return env, f"http://127.0.0.1:{port}"


def service_env(tmp_path, pg_url: str, rabbitmq_url: str, port: int, **more: str) -> dict[str, str]:
    """The environment of an ingest process of these tests (gunicorn on ``port``), plus ``more`` (which wins)."""
    values = {
        "HOME": tmp_path, "CALLREEL_DATA_DIR": tmp_path / "data", "DATABASE_URL": pg_url, "BROKER_URL": rabbitmq_url,
        "METRICS_PORT": "0", "PUBLIC_BASE_URL": "https://ingest.callreel.example", "CALLREEL_API_TOKEN": API_TOKEN,
        "PORT": port, "GUNICORN_WORKERS": "1",
    }
    return process_env(inherit=False, **{**values, **more})


@pytest.fixture
def rabbit(rabbitmq_url):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=rabbitmq_url)
    for queue in ("ingest", "audio"):
        broker.declare_queue(queue)
        broker.flush(queue)
    yield broker
    for queue in ("ingest", "audio"):
        broker.flush(queue)
    broker.close()


def test_gunicorn_and_the_worker_take_a_signed_webhook_to_a_stored_recording(deployment_env, rabbit, fake_twilio, s3, tmp_path):
    env, base = deployment_env
    body = os.urandom(200_000)
    recording = fake_twilio.add_recording(body, script=["404", "ok"])
    form = fake_twilio.callback(recording)
    call_id = form["CallSid"]
    signature = fake_twilio.sign(env["PUBLIC_BASE_URL"] + WEBHOOK_PATH, form)
    web_log, worker_log = tmp_path / "gunicorn.log", tmp_path / "worker.log"

    web = start([str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], env, web_log)
    try:
        def healthy():
            try:
                return httpx.get(f"{base}/healthz", timeout=2)
            except httpx.TransportError:
                return None

        health = wait_for(healthy, timeout=60, interval=0.2, what="gunicorn to answer /healthz", process=web, describe=log_tail(web_log))
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok", "broker": "ok"}

        post = lambda sig: httpx.post(  # noqa: E731
            f"{base}{WEBHOOK_PATH}", content=urlencode(form), timeout=10,
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
        )
        assert post("forged").status_code == 403
        accepted = post(signature)
        assert accepted.status_code == 202, accepted.text
        assert post(signature).json()["result"] == "duplicate"
        assert rabbit.get_queue_message_counts("ingest")[0] == 1  # one job, in RabbitMQ

        status = httpx.get(f"{base}/calls/{call_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        assert status.status_code == 200 and status.json()["status"] == "pending"
        assert httpx.get(f"{base}/calls/{call_id}", timeout=10).status_code == 401

        worker = start([str(BIN / "dramatiq"), "services.ingest.actors", "--queues", "ingest", "--processes", "1", "--threads", "1"], env, worker_log)
        try:
            def handed_on():
                answer = httpx.get(f"{base}/calls/{call_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10).json()
                return answer if answer["stage"] != "ingest" else None

            answer = wait_for(
                handed_on, timeout=60, interval=0.2, what="the worker to store the recording", process=worker, describe=log_tail(worker_log)
            )
        finally:
            stop(worker)
    finally:
        stop(web)

    assert answer["stage"] == "audio" and answer["status"] == "pending", answer
    assert answer["stages"]["ingest"]["attempts"] == 2  # the 404, then the file
    assert s3.client.get_object(Bucket=s3.bucket, Key=f"recordings/{call_id}.mp3")["Body"].read() == body
    assert rabbit.get_queue_message_counts("audio")[0] == 1  # split_channels, for the audio service
    assert "Traceback" not in worker_log.read_text()


def test_gunicorn_refuses_to_start_with_every_missing_setting(tmp_path):
    env = process_env(inherit=False, CALLREEL_DATA_DIR=tmp_path, PORT=free_port())
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"):
        assert name in result.stderr



def test_a_locked_calls_table_answers_503_within_twilios_budget_and_the_retry_stores_the_call(
    deployment_env, rabbit, fake_twilio, tmp_path, pg_url
):
    env, base = deployment_env
    env = {**env, "DB_LOCK_TIMEOUT": "3", "DB_STATEMENT_TIMEOUT": "8"}
    form = fake_twilio.callback(fake_twilio.add_recording(b"mp3"))
    signature = fake_twilio.sign(env["PUBLIC_BASE_URL"] + WEBHOOK_PATH, form)
    web_log = tmp_path / "gunicorn.log"

    def post():
        return httpx.post(
            f"{base}{WEBHOOK_PATH}", content=urlencode(form), timeout=20,
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )

    web = start([str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], env, web_log)
    try:
        def up():
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=60, interval=0.2, what="gunicorn to answer /healthz", process=web, describe=log_tail(web_log))
        import time

        import psycopg2

        holder = psycopg2.connect(pg_url)
        try:
            holder.cursor().execute("BEGIN; LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            refused = post()
            took = time.monotonic() - started
            health = httpx.get(f"{base}/healthz", timeout=20)
        finally:
            holder.rollback()
            holder.close()
        retried = post()  # Twilio's retry, once the lock is gone
    finally:
        stop(web)

    assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text
    assert took < 15, f"Twilio gives up at 15 s; the webhook took {took:.1f} s"
    assert health.status_code == 503 and health.json()["database"].startswith("unavailable"), health.text
    assert retried.status_code == 202, retried.text
    assert rabbit.get_queue_message_counts("ingest")[0] == 1  # the retry's job, and only it
