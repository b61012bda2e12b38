"""The skeleton every actor runs: validate → begin → log context → work → finish → hand on → advance."""

from __future__ import annotations

import logging

import dramatiq
import pytest
from dramatiq import Message

from shared import skeleton
from shared.contracts import Contract
from shared.errors import PermanentError
from shared.logs import TextFormatter
from shared.models import Call, Stage, VideoStatus
from shared.pipeline import row
from tests.support.calls import make_call

CALL = "CA" + "3" * 32
#: A probe actor on the audio stage's queue: the skeleton around a body the test counts.
PROBE = Contract("skeleton_probe", "audio", ("call_id",))
worked: list[str] = []


def _work(call: Call) -> dict:
    worked.append(call.id)
    logging.getLogger("callreel.test").info("working")
    return {"audio_duration": 12.5}


@pytest.fixture
def probe(stub_broker):
    """The probe actor, a worker on the audio queue, and what each message it ran ended with."""
    worked.clear()
    outcomes: list[tuple[str, BaseException | None]] = []

    class Seen(dramatiq.Middleware):
        def after_process_message(self, broker, message, *, result=None, exception=None):
            outcomes.append((message.kwargs.get("call_id"), exception))

    @skeleton.actor(PROBE, max_retries=3, min_backoff=10, max_backoff=10)
    def skeleton_probe(call_id: str) -> None:
        skeleton.run(Stage.AUDIO, call_id, _work, done=lambda call: call.audio_finished_at is not None)

    seen = Seen()
    stub_broker.add_middleware(seen)
    worker = dramatiq.Worker(stub_broker, queues={"audio"}, worker_timeout=100, worker_threads=1)
    worker.start()

    def send(call_id: str) -> None:
        stub_broker.enqueue(PROBE.message(call_id=call_id))
        stub_broker.join("audio", fail_fast=False)
        worker.join()

    try:
        yield send, outcomes, skeleton_probe
    finally:
        worker.stop()
        stub_broker.middleware.remove(seen)
        stub_broker.actors.pop(PROBE.actor_name, None)


def queued(broker, queue: str) -> list[dict]:
    return [Message.decode(raw).kwargs for raw in list(broker.queues[queue].queue)]


def test_the_actor_gets_its_stages_time_limit_and_never_retries_bad_input(probe, settings_env):
    _send, _outcomes, actor = probe
    assert actor.options["time_limit"] == row(Stage.AUDIO).time_limit(settings_env()) * 1000
    assert actor.options["throws"] == (PermanentError,)


def test_an_invalid_call_id_fails_for_good_without_a_row(sqlite_db, probe, stub_broker):
    send, outcomes, _actor = probe
    send("../../etc/passwd")
    # The actor ran, once: bad input is not retried.
    assert [(call_id, type(exc)) for call_id, exc in outcomes] == [("../../etc/passwd", PermanentError)]
    assert worked == []
    assert Call.select().count() == 0
    assert queued(stub_broker, "generation") == []


def test_one_message_works_records_hands_on_and_advances(sqlite_db, probe, stub_broker):
    send, outcomes, _actor = probe
    make_call(CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(CALL)
    assert outcomes == [(CALL, None)] and worked == [CALL]
    call = Call.get_by_id(CALL)
    assert (call.stage, call.audio_attempts, call.audio_duration) == (Stage.GENERATION, 1, 12.5)
    assert call.audio_finished_at is not None
    # The next stage's messages, from the table: one a side.
    assert queued(stub_broker, "generation") == [{"call_id": CALL, "side": "caller"}, {"call_id": CALL, "side": "callee"}]


def test_a_redelivered_message_is_harmless(sqlite_db, probe, stub_broker):
    send, outcomes, _actor = probe
    make_call(CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(CALL)
    send(CALL)  # RabbitMQ delivers at least once
    assert [exc for _, exc in outcomes] == [None, None]
    assert worked == [CALL]
    call = Call.get_by_id(CALL)
    assert (call.stage, call.audio_attempts) == (Stage.GENERATION, 1)
    assert len(queued(stub_broker, "generation")) == 2


def test_a_redelivery_between_finish_and_advance_only_hands_on(sqlite_db, probe, stub_broker):
    send, outcomes, _actor = probe
    make_call(CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING, audio_duration=3.0)
    Call.update(audio_finished_at=Call.created_at).where(Call.id == CALL).execute()  # a worker killed after finish
    send(CALL)
    assert outcomes == [(CALL, None)] and worked == []
    call = Call.get_by_id(CALL)
    assert (call.stage, call.audio_duration) == (Stage.GENERATION, 3.0)
    assert len(queued(stub_broker, "generation")) == 2


def test_log_lines_inside_a_stage_carry_its_call_and_stage(sqlite_db, caplog):
    make_call(CALL, stage=Stage.AUDIO)
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(TextFormatter().format(record))

    handler = Keep(level=logging.INFO)
    logging.getLogger("callreel.test").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO), skeleton.entered(Stage.AUDIO, CALL):
            _work(Call.get_by_id(CALL))
    finally:
        logging.getLogger("callreel.test").removeHandler(handler)
    assert any(line.endswith(f"working [call_id={CALL} stage=audio]") for line in lines), lines


def test_each_attempt_is_in_the_calls_history(sqlite_db, probe, stub_broker, monkeypatch):
    """stage.begun / stage.failed / stage.finished, recorded by the skeleton with the attempt and the worker (#28)."""
    import sys

    from shared import events

    send, outcomes, _actor = probe
    make_call(CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    first_time = [True]

    def flaky(call: Call) -> dict:
        if first_time.pop() if first_time else False:
            raise RuntimeError("the disk is on fire")
        return {"audio_duration": 1.0}

    monkeypatch.setattr(sys.modules[__name__], "_work", flaky)
    send(CALL)
    assert [exc is None for _, exc in outcomes] == [False, True]  # failed once, retried by Dramatiq, then done
    seen = [(e["kind"], e["stage"], e["detail"].get("attempt")) for e in events.history(CALL)]
    assert seen == [
        ("stage.begun", "audio", 1), ("stage.failed", "audio", 1), ("stage.begun", "audio", 2), ("stage.finished", "audio", None),
    ]
    failed = events.history(CALL)[1]
    assert failed["detail"]["error"] == "the disk is on fire" and failed["detail"]["error_type"] == "RuntimeError"
    import os

    assert failed["worker"].endswith(f"/{os.getpid()}")


def test_a_history_that_cannot_be_written_never_stops_the_work(sqlite_db, probe, stub_broker, monkeypatch):
    from shared import events

    def broken(**row):
        raise RuntimeError("events table gone")

    monkeypatch.setattr(events.Event, "create", broken)
    send, outcomes, _actor = probe
    make_call(CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(CALL)
    assert outcomes == [(CALL, None)] and Call.get_by_id(CALL).stage == Stage.GENERATION
