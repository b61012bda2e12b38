import threading

import dramatiq
import pytest

from shared import contracts
from shared.broker import GiveUpMiddleware, build_broker, rabbitmq_url
from shared.models import Call, Stage, VideoStatus
from shared.settings import load_settings
from tests.support.calls import make_call
from tests.support.wait import wait_for

CALL = "CA" + "5" * 32


def test_contract_messages_are_checked():
    message = contracts.SPLIT_CHANNELS.message(call_id=CALL)
    assert (message.queue_name, message.actor_name, message.kwargs) == ("audio", "split_channels", {"call_id": CALL})
    with pytest.raises(TypeError):
        contracts.SPLIT_CHANNELS.message()
    with pytest.raises(TypeError):
        contracts.SPLIT_CHANNELS.message(call_id=CALL, extra=1)
    assert contracts.COMPOSE.message(call_id=CALL, rerender=True).kwargs["rerender"] is True


def test_actor_signature_must_match_its_contract():
    with pytest.raises(TypeError):
        contracts.actor(contracts.SPLIT_CHANNELS)(lambda call, extra: None)


def test_one_queue_per_service():
    assert contracts.QUEUES == ("ingest", "audio", "generation", "compositor")


def test_rabbitmq_url_sets_heartbeat_but_keeps_explicit_values():
    s = load_settings({"BROKER_URL": "amqp://u:p@rabbit:5672/v", "BROKER_HEARTBEAT": "17"})
    assert "heartbeat=17" in rabbitmq_url(s)
    s = load_settings({"BROKER_URL": "amqp://u:p@rabbit:5672/v?heartbeat=5"})
    assert "heartbeat=5" in rabbitmq_url(s) and "heartbeat=30" not in rabbitmq_url(s)


def test_a_web_process_tries_each_connection_once_and_briefly():
    s = load_settings({"BROKER_URL": "amqp://u:p@rabbit:5672/v"})
    assert "connection_attempts=3" in rabbitmq_url(s) and "retry_delay=2" in rabbitmq_url(s)
    web = rabbitmq_url(s, fail_fast=True)
    assert "connection_attempts=1" in web and "socket_timeout=2" in web and "stack_timeout=2" in web
    s = load_settings({"BROKER_URL": "amqp://u:p@rabbit:5672/v?connection_attempts=2"})
    assert "connection_attempts=2" in rabbitmq_url(s, fail_fast=True)


def test_give_up_marks_the_call_failed_only_when_retries_are_exhausted(sqlite_db, stub_broker):
    """A transient error is retried; once retries run out the call ends failed with the error."""
    calls = []
    name = "test_flaky_" + CALL[-6:]

    def flaky(call_id):
        calls.append(call_id)
        raise RuntimeError("disk on fire")

    dramatiq.actor(flaky, actor_name=name, queue_name="audio", max_retries=1, min_backoff=10, max_backoff=20)
    make_call(CALL, stage=Stage.AUDIO)
    worker = dramatiq.Worker(stub_broker, worker_timeout=50)
    worker.start()
    try:
        stub_broker.enqueue(dramatiq.Message(queue_name="audio", actor_name=name, args=(), kwargs={"call_id": CALL}, options={}))
        # Wait on the outcome, not on queue bookkeeping: a loaded machine may
        # take a while to run the retry from the delay queue.
        wait_for(
            lambda: Call.get_by_id(CALL).video_status == VideoStatus.FAILED, timeout=60, interval=0.05, what="the call to be marked failed"
        )
        worker.join()
    finally:
        worker.stop()
    assert len(calls) == 2  # the first try and one retry
    call = Call.get_by_id(CALL)
    assert call.video_status == VideoStatus.FAILED
    assert call.video_error_message == "disk on fire"
    assert call.stage == Stage.DONE
    assert any(isinstance(m, GiveUpMiddleware) for m in stub_broker.middleware)


@pytest.mark.rabbitmq
def test_round_trip_through_real_rabbitmq(own_rabbitmq_url):
    """send() publishes with confirms to the real server; a worker on the service's queue receives it."""
    settings = load_settings({"BROKER_URL": own_rabbitmq_url})
    broker = build_broker(settings)
    assert broker.confirm_delivery is True
    received, done = [], threading.Event()

    def split_channels(call_id):
        received.append(call_id)
        done.set()

    dramatiq.actor(split_channels, broker=broker, actor_name="split_channels", queue_name="audio")
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    try:
        contracts.send(contracts.SPLIT_CHANNELS, call_id=CALL)
        worker = dramatiq.Worker(broker, queues={"audio"}, worker_timeout=100, worker_threads=1)
        worker.start()
        try:
            assert done.wait(20), "message did not come back from RabbitMQ"
        finally:
            worker.stop()
    finally:
        dramatiq.set_broker(previous)
        broker.close()
    assert received == [CALL]
