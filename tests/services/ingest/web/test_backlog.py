"""The backlog per stage: RabbitMQ's real management API on a private vhost, and the database when it is not there."""

import pika
import pytest
from dramatiq import Message

from services.ingest.web.backlog import BacklogReader, _management_endpoint, vhost_of
from shared.models import Stage, VideoStatus
from shared.settings import load_settings
from tests.support.calls import make_call, sid
from tests.support.services import free_port
from tests.support.wait import wait_for

MANAGEMENT = "http://guest:guest@127.0.0.1:15672"


def settings(**env):
    return load_settings({"CALLREEL_DATA_DIR": "/tmp", **env})


def test_vhost_and_endpoint_from_the_urls():
    assert vhost_of("amqp://guest:guest@rabbit:5672/callreel") == "callreel"
    assert vhost_of("amqp://guest:guest@rabbit:5672/%2F") == "/"
    assert vhost_of("amqp://guest:guest@rabbit:5672") == "/"
    url, auth = _management_endpoint("http://us%40er:p%3Ass@rabbit:15672/", "/")
    assert url == "http://rabbit:15672/api/queues/%2F?columns=name,messages,messages_ready,messages_unacknowledged,consumers"
    assert auth == ("us@er", "p:ss")  # credentials travel as Basic auth, never in the URL
    assert _management_endpoint("https://mq.example/rabbit", "a b")[0].startswith("https://mq.example/rabbit/api/queues/a%20b?")


def test_without_the_management_api_the_database_counts_calls_per_stage(sqlite_db):
    for n, (stage, status) in enumerate([
        (Stage.INGEST, VideoStatus.PENDING), (Stage.GENERATION, VideoStatus.GENERATING),
        (Stage.GENERATION, VideoStatus.GENERATING), (Stage.DONE, VideoStatus.FAILED),
    ]):
        make_call(sid(n), stage=stage, video_status=status)
    backlog = BacklogReader(settings()).read()
    assert backlog.source == "database" and backlog.error is None
    assert [(s.stage, s.calls, s.ready) for s in backlog.stages] == [
        ("ingest", 1, None), ("audio", 0, None), ("generation", 2, None), ("compositor", 0, None),
    ]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://guest:wrong@127.0.0.1:15672", "HTTP 401"),
        (f"http://guest:guest@127.0.0.1:{free_port()}", "ConnectError"),
    ],
    ids=["bad-password", "nothing-listening"],
)
def test_a_management_api_that_does_not_answer_falls_back_to_the_database(sqlite_db, url, reason):
    make_call("CA" + "1" * 32, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    backlog = BacklogReader(settings(RABBITMQ_MANAGEMENT_URL=url)).read()
    assert backlog.source == "database" and backlog.stages[1].calls == 1
    assert backlog.error == f"RabbitMQ management API unavailable ({reason})"
    assert "wrong" not in backlog.error


def test_the_backlog_as_json_behind_the_token(pg_db, stub_broker, ingest_env):
    import falcon.testing

    from services.ingest.app import create_app
    from tests.services.ingest.conftest import API_TOKEN

    make_call("CA" + "3" * 32, stage=Stage.COMPOSITOR, video_status=VideoStatus.GENERATING)
    client = falcon.testing.TestClient(create_app())
    assert client.simulate_get("/backlog").status_code == 401
    body = client.simulate_get("/backlog", headers={"Authorization": f"Bearer {API_TOKEN}"}).json
    assert body["source"] == "database" and body["error"] is None
    assert {row["stage"]: row["calls"] for row in body["stages"]} == {"ingest": 0, "audio": 0, "generation": 0, "compositor": 1}


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_management
def test_queue_numbers_come_from_rabbitmqs_management_api(sqlite_db, own_rabbitmq_url):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=own_rabbitmq_url)
    try:
        for queue in ("ingest", "audio", "generation", "compositor"):
            broker.declare_queue(queue)
        for n in range(3):
            broker.enqueue(Message(queue_name="audio", actor_name="split_channels", args=(), kwargs={"call_id": n}, options={}))
        for n in range(2):  # waiting for their time: Dramatiq's delay queue
            broker.enqueue(Message(queue_name="generation", actor_name="poll_segment", args=(), kwargs={"segment_id": n}, options={}), delay=600_000)
        broker.enqueue(Message(queue_name="ingest", actor_name="download_recording", args=(), kwargs={}, options={}))
        broker.enqueue(Message(queue_name="compositor", actor_name="compose", args=(), kwargs={}, options={}))
    finally:
        broker.close()
    connection = pika.BlockingConnection(pika.URLParameters(own_rabbitmq_url))
    try:
        channel = connection.channel()
        method, _, _ = channel.basic_get("compositor", auto_ack=False)
        channel.basic_nack(method.delivery_tag, requeue=False)  # rejected for good: to the dead-letter queue
        assert channel.basic_get("ingest", auto_ack=False)[0] is not None  # taken, not yet acked: in progress
        make_call("CA" + "2" * 32, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)

        reader = BacklogReader(settings(RABBITMQ_MANAGEMENT_URL=MANAGEMENT, BROKER_URL=own_rabbitmq_url))
        wanted = {"ingest": (0, 1, 0, 0, 0), "audio": (3, 0, 0, 0, 1), "generation": (0, 0, 2, 0, 0), "compositor": (0, 0, 0, 1, 0)}
        seen: dict = {}

        def counted():
            reader._cached = None
            backlog = reader.read()
            seen.clear()
            seen.update({s.stage: (s.ready, s.in_progress, s.delayed, s.dead, s.calls) for s in backlog.stages})
            return backlog if seen == wanted else None

        # The management API refreshes its numbers every few seconds.
        backlog = wait_for(counted, timeout=60, interval=1, what=f"the backlog {wanted}", describe=lambda: f"seen {seen}")
        assert backlog.source == "rabbitmq" and backlog.error is None
        assert all(s.consumers == 0 for s in backlog.stages)  # no worker is running: the page shows it
    finally:
        connection.close()
