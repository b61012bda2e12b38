"""The service as deployed: ``dramatiq services.audio.actors`` on the real RabbitMQ, PostgreSQL and S3 over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from shared.broker import build_broker
from shared.contracts import SPLIT_CHANNELS
from shared.models import Call, Stage
from tests.support import media
from tests.support.env import process_env
from tests.support.wait import log_tail, wait_for

from .conftest import CALL_ID


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_worker_process_splits_a_call(pg_db, pg_url, s3, s3_server, rabbitmq_url, make_call, settings_env, tmp_path):
    settings = settings_env(BROKER_URL=rabbitmq_url)
    make_call(media.tone_call(tmp_path / "call.mp3", 3.0, ((0.5, 2.0),), ((2.2, 2.9),)))
    env = process_env(WORKER_THREADS="1")  # the test's database, broker, bucket and TMP_DIR
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "services.audio.actors", "--processes", "1", "--threads", "1", "--queues", "audio"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )
    broker = build_broker(settings)
    try:
        broker.enqueue(SPLIT_CHANNELS.message(call_id=CALL_ID))
        call = wait_for(
            lambda: Call.get_or_none((Call.id == CALL_ID) & (Call.stage == Stage.GENERATION)),
            timeout=60, interval=0.2, what="the worker to split the call", process=worker, describe=log_tail(log, 3000),
        )
        assert call.caller_speech and call.callee_speech
        ready, _delayed, _dead = broker.get_queue_message_counts("generation")
        assert ready == 2
    finally:
        broker.flush_all()  # the vhost is the session's: leave no messages for later tests
        broker.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
