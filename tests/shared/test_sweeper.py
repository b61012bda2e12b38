"""The sweeper's decisions on a real database: which calls are stuck, retried, failed or left alone."""

from __future__ import annotations

import datetime as dt

import pytest
from dramatiq import Message

from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from shared.retry import retry_call
from shared.sweeper import check_deadline, stuck_calls, sweep
from tests.support.calls import make_call, sid

HOUR = dt.timedelta(hours=1)


def drain(broker, queue):
    q = broker.queues[queue]
    messages = []
    while not q.empty():
        messages.append(Message.decode(q.get_nowait()))
    return [(m.actor_name, m.kwargs) for m in messages]


@pytest.fixture
def broker(sqlite_db, stub_broker, settings_env):
    settings_env(STAGE_DEADLINE="600", SWEEP_MAX_RETRIES="2")
    return stub_broker


def stale(n: int, age: dt.timedelta = HOUR, **columns) -> str:
    """A call whose row last changed ``age`` ago."""
    return make_call(sid(n), updated_at=utcnow() - age, **columns).id


def test_only_unfinished_calls_idle_past_the_deadline_are_stuck(broker):
    stuck = stale(1, video_status=VideoStatus.PENDING, stage=Stage.INGEST)
    stale(2, dt.timedelta(minutes=5), video_status=VideoStatus.PENDING, stage=Stage.INGEST)  # still within the deadline
    stale(3, video_status=VideoStatus.COMPLETED, stage=Stage.DONE)
    stale(4, video_status=VideoStatus.FAILED, stage=Stage.DONE)
    polled = stale(5, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION)
    Segment.create(call_id=polled, side="caller", index=0, start=0, end=4, state=SegmentState.SUBMITTED)  # polled just now
    assert [c.id for c in stuck_calls()] == [stuck]


def test_a_stuck_call_is_re_enqueued_from_its_first_unfinished_stage_then_failed_with_a_reason(broker):
    now = utcnow()
    cid = stale(
        1, video_status=VideoStatus.PENDING, stage=Stage.AUDIO, ingest_started_at=now - HOUR, ingest_finished_at=now - HOUR,
    )
    [first] = sweep()
    assert (first.action, first.stage) == ("retried", Stage.AUDIO)
    assert drain(broker, "audio") == [("split_channels", {"call_id": cid})]
    call = Call.get_by_id(cid)
    assert call.sweep_count == 1 and call.video_status == VideoStatus.PENDING
    assert sweep() == []  # re-enqueuing counts as a change: the deadline starts again

    for expected in (2, 3):
        Call.update(updated_at=utcnow() - HOUR).where(Call.id == cid).execute()
        [swept] = sweep()
        assert Call.get_by_id(cid).sweep_count == expected
    assert swept.action == "failed"
    assert drain(broker, "audio") == [("split_channels", {"call_id": cid})]  # the second sweep only
    call = Call.get_by_id(cid)
    assert call.video_status == VideoStatus.FAILED and call.stage == Stage.DONE
    assert "Stuck in the audio stage" in call.video_error_message
    assert "STAGE_DEADLINE=600" in call.video_error_message and f"callreel retry {cid}" in call.video_error_message

    # A person's retry starts the count again.
    assert retry_call(cid) == Stage.AUDIO
    assert Call.get_by_id(cid).sweep_count == 0


def test_generation_retry_resubmits_failed_segments_and_follows_live_jobs(broker):
    now = utcnow()
    cid = stale(
        1, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION, ingest_finished_at=now, audio_finished_at=now,
        caller_state=SideState.GENERATED, callee_state=SideState.GENERATING,
    )
    Segment.create(call_id=cid, side="caller", index=0, start=0, end=4, state=SegmentState.COMPLETED, video_key="v")
    lost = Segment.create(call_id=cid, side="callee", index=0, start=0, end=4, state=SegmentState.SUBMITTED, fal_request_id="r1", attempts=1)
    failed = Segment.create(call_id=cid, side="callee", index=1, start=4, end=8, state=SegmentState.FAILED, error="boom", attempts=3)
    Segment.update(updated_at=now - HOUR).execute()
    [swept] = sweep()
    assert swept.action == "retried" and "generation" in swept.detail
    # The job at fal is kept (generation polls it again); the failed segment starts over.
    lost = Segment.get_by_id(lost.id)
    assert (lost.state, lost.fal_request_id, lost.attempts) == (SegmentState.SUBMITTED, "r1", 1)
    failed = Segment.get_by_id(failed.id)
    assert (failed.state, failed.fal_request_id, failed.attempts, failed.error) == (SegmentState.PENDING, None, 0, None)
    assert Call.get_by_id(cid).callee_state == SideState.PENDING
    assert sorted(kw["side"] for _, kw in drain(broker, "generation")) == ["callee", "caller"]


def test_a_call_that_moved_while_the_sweeper_looked_is_left_alone(broker, monkeypatch):
    cid = stale(1, video_status=VideoStatus.PENDING, stage=Stage.INGEST)
    import shared.sweeper as sweeper

    real = sweeper.stuck_calls

    def then_it_moves(*args, **kwargs):
        calls = real(*args, **kwargs)
        Call.update(updated_at=utcnow(), stage=Stage.AUDIO).where(Call.id == cid).execute()  # a worker got to it
        return calls

    monkeypatch.setattr(sweeper, "stuck_calls", then_it_moves)
    [swept] = sweep()
    assert swept.action == "skipped"
    assert Call.get_by_id(cid).sweep_count == 0 and drain(broker, "ingest") == []


def test_zero_retries_fails_at_once(broker, settings_env):
    settings_env(SWEEP_MAX_RETRIES="0")
    cid = stale(1, video_status=VideoStatus.PENDING, stage=Stage.INGEST)
    [swept] = sweep()
    assert swept.action == "failed" and Call.get_by_id(cid).video_status == VideoStatus.FAILED
    assert drain(broker, "ingest") == []


def test_deadline_shorter_than_a_step_is_reported(settings_env):
    assert check_deadline(settings_env(STAGE_DEADLINE="3600")) is None
    warning = check_deadline(settings_env(STAGE_DEADLINE="900", COMPOSE_TIMEOUT="1800"))
    assert "COMPOSE_TIMEOUT" in warning
