"""LOG_FORMAT=json end to end: gunicorn's and Dramatiq's own lines are JSON too, each line about a call with its call id."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from dramatiq import Message

from tests.services.ingest.conftest import API_TOKEN
from tests.services.ingest.test_processes import service_env
from tests.support.browser import gunicorn
from tests.support.calls import make_call, sid
from tests.support.deploy import ROOT
from tests.support.processes import stop_group
from tests.support.services import free_port
from tests.support.wait import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def lines_of(text: str) -> list[dict]:
    """Every line as a JSON object; a line that is not one fails the test, named."""
    parsed = []
    for line in text.splitlines():
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"not a JSON line: {line!r}")
    return parsed


def test_gunicorn_and_a_dramatiq_worker_write_only_json_lines(pg_db, pg_url, own_rabbitmq_url, tmp_path):
    call = sid(7)
    make_call(call)
    port = free_port()
    env = service_env(tmp_path, pg_url, own_rabbitmq_url, port, LOG_FORMAT="json", TWILIO_ACCOUNT_SID="AC" + "1" * 32,
                      TWILIO_AUTH_TOKEN="t" * 32)
    base = f"http://127.0.0.1:{port}"
    web_log = tmp_path / "gunicorn.log"
    with gunicorn(env, web_log, base):
        assert httpx.get(f"{base}/calls/{call}", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
        assert httpx.get(f"{base}/no-such-page").status_code == 404
    web = lines_of(web_log.read_text())
    access = [line for line in web if line["logger"] == "gunicorn.access"]
    assert {(a["path"], a["status"]) for a in access} >= {(f"/calls/{call}", "200"), ("/no-such-page", "404")}
    assert next(a for a in access if a["path"] == f"/calls/{call}")["call_id"] == call
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in web)

    # A worker through shared.dramatiq_cli: its main process's lines too; a message about a call that fails.
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=own_rabbitmq_url)
    try:
        broker.declare_queue("audio")
        broker.enqueue(Message(queue_name="audio", actor_name="split_channels", args=(), kwargs={"call_id": call}, options={"max_retries": 0}))
    finally:
        broker.close()
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "shared.dramatiq_cli", "services.audio.actors", "--processes", "1", "--threads", "1",
             "--queues", "audio", "--worker-shutdown-timeout", "5000"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for(lambda: call in worker_log.read_text(), timeout=60, what="the worker to log about the call", process=worker)
    finally:
        stop_group(worker)
    lines = lines_of(worker_log.read_text())
    assert any(line["logger"] == "dramatiq.MainProcess" and "booting up" in line["message"] for line in lines)
    about_call = [line for line in lines if call in json.dumps(line)]
    assert about_call and all(line.get("call_id") == call for line in about_call), about_call
