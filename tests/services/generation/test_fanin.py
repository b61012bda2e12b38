"""The fan-in and the no-key path, in process: Dramatiq's in-process broker and worker, real databases."""

from __future__ import annotations

import threading

import dramatiq
import pytest

from services.generation.fanin import fan_in, settle_side
from shared.contracts import GENERATE_SIDE, send
from shared.keys import new_call_id
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus
from tests.support.calls import make_call
from tests.support.wait import wait_for


def compose_messages(broker, actor: str = "compose") -> list[str]:
    queue = broker.queues["compositor"]
    messages = [dramatiq.Message.decode(m) for m in list(queue.queue)]
    return [m.kwargs["call_id"] for m in messages if m.actor_name == actor]


def ready_call(call_id: str) -> None:
    """Both sides generating, each with its one segment just finished: the last step before the fan-in."""
    make_call(call_id, stage=Stage.GENERATION, video_status=VideoStatus.GENERATING, audio_duration=10.0,
                caller_state=SideState.GENERATING, callee_state=SideState.GENERATING)
    for side in ("caller", "callee"):
        Segment.create(call_id=call_id, side=side, index=0, start=0, end=10, state=SegmentState.COMPLETED,
                       audio_key=f"audio/{call_id}-{side}-000.mp3", video_key=f"videos/{call_id}-{side}-000.mp4")


@pytest.mark.postgres
def test_fan_in_enqueues_compose_exactly_once_under_concurrency(pg_db, stub_broker, s3):
    """Two threads end the two sides of a call at the same instant, each then tries the fan-in: one compose."""
    calls = [new_call_id() for _ in range(12)]
    for call_id in calls:
        ready_call(call_id)
    errors: list[BaseException] = []

    def worker(side: str, barrier: threading.Barrier, call_id: str) -> None:
        try:
            barrier.wait(timeout=10)
            settle_side(call_id, side)  # marks the side, then the fan-in
            fan_in(call_id)  # and again, as a redelivered message would
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            pg_db.close()

    for call_id in calls:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=worker, args=(side, barrier, call_id)) for side in ("caller", "callee")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert sorted(compose_messages(stub_broker)) == sorted(calls)  # exactly one each
    for call_id in calls:
        call = Call.get_by_id(call_id)
        assert call.compose_enqueued_at is not None and call.stage == Stage.COMPOSITOR
        assert call.caller_state == call.callee_state == SideState.GENERATED
        assert call.caller_video_url.endswith(f"videos/{call_id}-caller-000.mp4")


def test_no_fan_in_until_both_sides_have_ended(sqlite_db, stub_broker, local_store):
    call_id = new_call_id()
    ready_call(call_id)
    Segment.update(state=SegmentState.SUBMITTED).where((Segment.call_id == call_id) & (Segment.side == "callee")).execute()
    settle_side(call_id, "caller")
    call = Call.get_by_id(call_id)
    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.GENERATING
    assert call.compose_enqueued_at is None and compose_messages(stub_broker) == []
    # A call that ended meanwhile (failed by the sweeper…) is not composed either.
    Call.update(callee_state=SideState.FAILED, video_status=VideoStatus.FAILED).where(Call.id == call_id).execute()
    assert fan_in(call_id) is False and compose_messages(stub_broker) == []


def test_a_redelivered_poll_ends_a_side_its_killed_worker_left_open(sqlite_db, stub_broker, local_store):
    """A worker killed between storing a side's last segment and ending the side: the poll comes back, the call goes on."""
    from services.generation.stage import poll_segment

    call_id = new_call_id()
    ready_call(call_id)
    settle_side(call_id, "caller")
    callee = Segment.get((Segment.call_id == call_id) & (Segment.side == "callee"))
    assert Call.get_by_id(call_id).callee_state == SideState.GENERATING  # where the kill left it
    poll_segment(callee.id)
    call = Call.get_by_id(call_id)
    assert call.callee_state == SideState.GENERATED and call.stage == Stage.COMPOSITOR
    poll_segment(callee.id)  # and once more: still one compose
    assert compose_messages(stub_broker) == [call_id]


def test_a_long_calls_stored_segments_offer_its_chunks_to_the_compositor(sqlite_db, stub_broker, local_store, settings_env):
    """Each segment stored (a side ended, the other still running) sends prerender; not for a short call, nor at the fan-in."""
    settings_env(COMPOSE_CHUNK_SECONDS="60")
    long_call, short_call = new_call_id(), new_call_id()
    for call_id, seconds in ((long_call, 300.0), (short_call, 100.0)):
        ready_call(call_id)
        Call.update(audio_duration=seconds).where(Call.id == call_id).execute()
        Segment.update(state=SegmentState.SUBMITTED).where((Segment.call_id == call_id) & (Segment.side == "callee")).execute()
        settle_side(call_id, "caller")
    assert compose_messages(stub_broker, "prerender") == [long_call]
    settings_env(COMPOSE_CHUNK_SECONDS="60", COMPOSE_EARLY_CHUNKS="false")
    settle_side(long_call, "caller")
    assert compose_messages(stub_broker, "prerender") == [long_call]
    settings_env(COMPOSE_CHUNK_SECONDS="60")
    Segment.update(state=SegmentState.COMPLETED).where(Segment.call_id == long_call).execute()
    settle_side(long_call, "callee")  # the last one: the fan-in hands the call on, the compose renders what is left
    assert compose_messages(stub_broker, "prerender") == [long_call] and compose_messages(stub_broker) == [long_call]


class InProcess:
    """The generation actors on the in-process broker, with a worker on their queue only."""

    def __init__(self, broker) -> None:
        import services.generation.actors  # noqa: F401  (declares the actors)

        self.broker = broker
        self.worker = dramatiq.Worker(broker, queues={"generation"}, worker_timeout=50, worker_threads=2)

    def run(self) -> None:
        """Wait until every generation message sent so far has been handled.

        (The worker's own queues are joined, not the broker's: a queue another
        test drained without ``task_done`` would make ``broker.join`` wait forever.)
        """
        for _ in range(2):
            wait_for(lambda: self.broker.queues["generation"].qsize() == 0, timeout=30, what="the generation queue to empty")
            self.worker.join()


@pytest.fixture
def generation_worker(stub_broker):
    runner = InProcess(stub_broker)
    runner.worker.start()
    yield runner
    runner.worker.stop()


def test_without_a_fal_key_sides_are_local_and_nothing_is_sent(sqlite_db, generation_worker, local_store):
    broker = generation_worker.broker
    call_id = new_call_id()
    make_call(call_id, stage=Stage.AUDIO, video_status=VideoStatus.PENDING,
                caller_state=SideState.PENDING, callee_state=SideState.SILENT)
    # Segments left by an audio stage that had a key: still nothing is submitted.
    Segment.create(call_id=call_id, side="caller", index=0, start=0, end=10, audio_key=f"audio/{call_id}-caller-000.mp3")
    for side in ("caller", "callee"):
        send(GENERATE_SIDE, call_id=call_id, side=side)
    generation_worker.run()
    call = Call.get_by_id(call_id)
    assert call.caller_state == SideState.LOCAL and call.callee_state == SideState.SILENT
    assert call.fal_job_id is None and call.video_status == VideoStatus.PENDING
    segment = Segment.get(Segment.call_id == call_id)
    assert segment.state == SegmentState.PENDING and segment.attempts == 0 and segment.fal_request_id is None
    assert compose_messages(broker) == [call_id] and call.stage == Stage.COMPOSITOR
    # Redelivered: the sides stay as they are and no second compose goes out.
    send(GENERATE_SIDE, call_id=call_id, side="caller")
    generation_worker.run()
    assert compose_messages(broker) == [call_id]


def test_bad_messages_fail_without_crashing_the_worker(sqlite_db, generation_worker, local_store):
    broker = generation_worker.broker
    send(GENERATE_SIDE, call_id="../../etc/passwd", side="caller")
    send(GENERATE_SIDE, call_id=new_call_id(), side="both")  # no such side
    send(GENERATE_SIDE, call_id=new_call_id(), side="caller")  # no such call: nothing to do
    generation_worker.run()
    dead = [m.kwargs for m in broker.dead_letters_by_queue["generation"]]
    assert {d["side"] for d in dead} == {"caller", "both"} and len(dead) == 2  # failed for good, not retried
    assert Call.select().count() == 0 and compose_messages(broker) == []


def test_a_side_video_url_only_for_a_video_in_step_with_the_call(sqlite_db, stub_broker, local_store):
    """One segment over the whole call is the side's video; one that leaves silences out, or packs stretches, is not."""
    for start, end, pieces, whole in ((0.0, 10.0, None, True), (1.0, 10.0, None, False), (0.0, 6.0, None, False),
                                      (0.0, 10.0, [[0.0, 4.0, 0.0], [6.0, 10.0, 4.0]], False)):
        call_id = new_call_id()
        ready_call(call_id)
        Segment.update(start=start, end=end, pieces=pieces).where((Segment.call_id == call_id) & (Segment.side == "caller")).execute()
        settle_side(call_id, "caller")
        call = Call.get_by_id(call_id)
        assert call.caller_state == SideState.GENERATED
        assert (call.caller_video_url is not None) == whole, (start, end, pieces)
