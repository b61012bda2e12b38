"""``callreel sweep`` as a process, on PostgreSQL and a RabbitMQ vhost of its own, reading the management API.

A call whose message waits in a queue is not lost: the sweeper must neither
send it again (a duplicate) nor fail it (it would run later anyway). It sent
it again: with no generation worker running, 3 calls' 6 queued messages became
12; under a long backlog it failed calls that were only waiting.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from shared.contracts import GENERATE_SIDE
from shared.models import Call, Stage, VideoStatus, utcnow
from shared.queues import QueueReader, QueueState
from shared.settings import load_settings
from tests.support.rabbitmq import CREDENTIALS, MANAGEMENT_URL

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.rabbitmq_management]

CLI = Path(sys.executable).with_name("callreel")
MANAGEMENT = MANAGEMENT_URL.replace("://", f"://{CREDENTIALS[0]}:{CREDENTIALS[1]}@", 1)


@pytest.fixture
def env(pg_db, pg_url, own_rabbitmq_url, tmp_path):
    return {
        "PATH": "/usr/bin:/bin", "CALLREEL_DATA_DIR": str(tmp_path), "DATABASE_URL": pg_url, "BROKER_URL": own_rabbitmq_url,
        "RABBITMQ_MANAGEMENT_URL": MANAGEMENT, "STAGE_DEADLINE": "600", "SWEEP_MAX_RETRIES": "2", "METRICS_PORT": "0",
    }


def sweep(env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([str(CLI), "sweep"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def generation_calls(broker, n: int) -> list[str]:
    """``n`` calls an hour into the generation stage, each side's message waiting in the generation queue."""
    ids = []
    for i in range(n):
        cid = "CA" + f"{i + 1:032x}"
        now = utcnow()
        Call.create(id=cid, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION, ingest_finished_at=now, audio_finished_at=now)
        for side in ("caller", "callee"):
            broker.enqueue(GENERATE_SIDE.message(call_id=cid, side=side))
        ids.append(cid)
    Call.update(updated_at=utcnow() - dt.timedelta(hours=1)).execute()
    return ids


def management_shows(env: dict[str, str], wanted: QueueState) -> None:
    """Wait until the management API's statistics (refreshed every few seconds) show the generation queue as ``wanted``."""
    reader = QueueReader(load_settings(env))
    deadline = time.monotonic() + 60
    while (seen := reader.stages()["generation"]) != wanted:
        assert time.monotonic() < deadline, f"the management API shows {seen}, not {wanted}"
        time.sleep(1)
        reader.forget()


@pytest.fixture
def rabbit(own_rabbitmq_url):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=own_rabbitmq_url)
    for queue in ("ingest", "audio", "generation", "compositor"):
        broker.declare_queue(queue)
    yield broker
    broker.close()


def test_no_generation_worker_the_queued_calls_are_not_sent_again_and_the_sweep_alerts(env, rabbit):
    calls = generation_calls(rabbit, 3)
    management_shows(env, QueueState(ready=6, in_progress=0, delayed=0, dead=0, consumers=0))

    for _ in range(3):  # more sweeps than SWEEP_MAX_RETRIES: still nothing failed, nothing sent
        done = sweep(env)
        Call.update(updated_at=utcnow() - dt.timedelta(hours=1)).execute()
    assert rabbit.get_queue_message_counts("generation")[0] == 6  # was 12 after one sweep
    assert "no consumer on the generation queue" in done.stderr, done.stderr
    for cid in calls:
        assert f"{cid} alerted" in done.stdout, done.stdout
        call = Call.get_by_id(cid)
        assert (call.video_status, call.sweep_count) == (VideoStatus.GENERATING, 0)


def test_under_a_backlog_waiting_calls_are_neither_sent_again_nor_failed(env, rabbit, own_rabbitmq_url):
    calls = generation_calls(rabbit, 3)
    # A worker busy with one message, the other five waiting behind it.
    connection = pika.BlockingConnection(pika.URLParameters(own_rabbitmq_url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume("generation", lambda *args: None, auto_ack=False)
        connection.process_data_events(time_limit=1)
        management_shows(env, QueueState(ready=5, in_progress=1, delayed=0, dead=0, consumers=1))

        done = sweep({**env, "SWEEP_MAX_RETRIES": "0"})  # before: every call failed at once
    finally:
        connection.close()
    for cid in calls:
        assert f"{cid} waiting" in done.stdout, done.stdout
        assert Call.get_by_id(cid).video_status == VideoStatus.GENERATING
    assert rabbit.get_queue_message_counts("generation")[0] == 6
