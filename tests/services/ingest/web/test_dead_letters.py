"""Dead letters on a real RabbitMQ vhost: listed with their call, retried (publish, then ack), discarded (#28)."""

import dramatiq
import pytest
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from services.ingest.web.deadletters import DeadLetterStore
from shared import events
from shared.models import Call, Segment, Stage, VideoStatus
from shared.settings import get_settings
from tests.support.calls import make_call, sid
from tests.support.rabbitmq import RabbitAdmin

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.rabbitmq_management]


@pytest.fixture
def rabbit(pg_db, own_rabbitmq_url, settings_env):
    """This vhost as the broker the console sends with, and a test's hands on it."""
    settings_env(BROKER_URL=own_rabbitmq_url)
    previous = dramatiq.get_broker()
    broker = RabbitmqBroker(url=own_rabbitmq_url)
    for queue in ("ingest", "audio", "generation", "compositor"):
        broker.declare_queue(queue)
    dramatiq.set_broker(broker)
    admin = RabbitAdmin(own_rabbitmq_url)
    try:
        yield broker, admin
    finally:
        dramatiq.set_broker(previous)
        broker.close()
        admin.close()


def _dead(broker, admin, queue: str, actor: str, **kwargs) -> str:
    message = broker.enqueue(Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={"retries": 5}))
    admin.dead_letter(queue)
    return message.message_id


def test_dead_letters_are_listed_retried_and_discarded_without_losing_any(rabbit):
    broker, admin = rabbit
    failed, running, other = sid(0xE1), sid(0xE2), sid(0xE3)
    make_call(failed, video_status=VideoStatus.FAILED, stage=Stage.DONE, audio_finished_at=None, ingest_finished_at=Call.created_at.default(),
              video_error_message="split failed", recording_channels=2)
    make_call(running, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION)
    make_call(other, video_status=VideoStatus.FAILED, stage=Stage.DONE)
    segment = Segment.create(call_id=running, side="caller", index=0, start=0, end=4)
    split = _dead(broker, admin, "audio", "split_channels", call_id=failed)
    poll = _dead(broker, admin, "generation", "poll_segment", segment_id=segment.id)
    dropped = _dead(broker, admin, "compositor", "compose", call_id=other)
    store = DeadLetterStore(get_settings())

    found = store.read()
    assert [(d.message_id, d.call_id, d.actor) for d in found["audio"]] == [(split, failed, "split_channels")]
    assert [(d.message_id, d.call_id) for d in found["generation"]] == [(poll, running)]  # its call found through the segment
    assert found["ingest"] == [] and [d.message_id for d in found["compositor"]] == [dropped]
    assert admin.queue("audio.XQ").ready == 1  # reading took nothing away

    # The failed call's message: the call is reopened from its first unfinished stage, the dead letter acked after.
    (line,) = store.act("retry", "alice", queue="audio", message_id=split)
    assert "runs again from audio" in line
    assert admin.queue("audio.XQ").ready == 0 and admin.queue("audio").ready == 1
    assert Call.get_by_id(failed).video_status == VideoStatus.PENDING
    assert [(e["kind"], e["operator"]) for e in events.history(failed)] == [("retried", "alice"), ("operator.dead_letter_retry", "alice")]

    # A message of a call still running goes again as it was, its spent retries reset.
    (line,) = store.act("retry", "bob", queue="generation", message_id=poll)
    assert "sent to generation again" in line and admin.queue("generation.XQ").ready == 0
    connection_channel = broker.channel
    method, _, body = connection_channel.basic_get("generation", auto_ack=True)
    again = Message.decode(body)
    assert again.message_id == poll and again.kwargs == {"segment_id": segment.id} and "retries" not in again.options

    # An id nobody has: nothing happens; discard all of a queue: gone, and recorded.
    assert store.act("discard", "alice", queue="compositor", message_id="no-such-id") == []
    assert admin.queue("compositor.XQ").ready == 1
    assert len(store.act("discard", "alice", queue="compositor")) == 1
    assert admin.queue("compositor.XQ").ready == 0 and admin.queue("compositor").ready == 0
    assert [(e["kind"], e["operator"]) for e in events.history(other)] == [("operator.dead_letter_discard", "alice")]
    assert all(v == [] for v in store.read().values())
