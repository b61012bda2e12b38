"""Submission trouble and giving up, with fal.ai replaced by a stub (the worker-process tests use the real client)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from dramatiq import Message

from services.generation import jobs, stage
from services.generation.fal import FalError
from shared import fal_slots, keys, progress
from shared.contracts import CANCEL_JOBS
from shared.errors import TransientError
from shared.models import Call, Segment, SegmentState, SideState, Stage, TranscriptStatus, VideoStatus, utcnow
from tests.support.calls import make_call
from tests.support.fal_stub import StubQueue


@pytest.fixture
def call_with_segments(sqlite_db, stub_broker, local_store, settings_env):
    return add_call(local_store, settings_env, segments=2)


def add_call(local_store, settings_env, *, segments: int) -> str:
    settings_env(FAL_KEY="k")
    # A transcript was supplied: these tests are about the video jobs (test_stt.py has the speech-to-text ones).
    call_id = make_call(
        stage=Stage.GENERATION, video_status=VideoStatus.PENDING, callee_state=SideState.SILENT,
        transcript_status=TranscriptStatus.SUPPLIED,
    ).id
    for index in range(segments):
        key = keys.segment_audio_key(call_id, "caller", index)
        path = local_store.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"ID3 audio %d" % index)
        Segment.create(call_id=call_id, side="caller", index=index, start=index * 10, end=index * 10 + 10, audio_key=key)
    return call_id


def test_transient_submit_trouble_spends_no_attempt_and_retries_the_message(call_with_segments, monkeypatch, stub_broker):
    call_id = call_with_segments
    stub = StubQueue(FalError("fal.ai answered 503: unavailable", kind="transient", status_code=503), "req-1")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    with pytest.raises(TransientError, match="503"):
        stage.generate_side(call_id, "caller")
    first, second = Segment.select().where(Segment.call_id == call_id).order_by(Segment.index)
    assert first.state == SegmentState.PENDING and first.attempts == 0 and "503" in first.progress
    assert second.state == SegmentState.SUBMITTED and second.fal_request_id == "req-1"  # the others went on
    call = Call.get_by_id(call_id)
    assert call.fal_job_id == "req-1" and call.video_status == VideoStatus.GENERATING
    assert call.caller_state == SideState.GENERATING
    assert stub_broker.queues["generation.DQ"].qsize() == 1  # req-1's first poll, delayed
    # Dramatiq runs the message again: only the pending segment is submitted this time.
    stub.answers = ["req-2"]
    stage.generate_side(call_id, "caller")
    # A local store: the audio goes inside the request (services/generation/inputs.py), segment 0's bytes.
    assert [base64.b64decode(a["audio_url"].split(",", 1)[1]) for a in stub.submitted[-1:]] == [b"ID3 audio 0"]
    assert Call.get_by_id(call_id).fal_job_id == "req-1,req-2"


def test_a_429_makes_the_segment_wait_and_never_fails_the_call(call_with_segments, monkeypatch, stub_broker):
    """fal-client has already retried the 429 ten times: the segment gives its slot back and comes back later."""
    call_id = call_with_segments
    stub = StubQueue(FalError("fal.ai answered 429: slow down", kind="transient", status_code=429), "req-1")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")  # not raised: the message is not retried, the segment's own poll comes back
    first, second = Segment.select().where(Segment.call_id == call_id).order_by(Segment.index)
    assert first.state == SegmentState.PENDING and first.attempts == 0 and "rate limiting (429)" in first.progress
    assert second.state == SegmentState.SUBMITTED
    assert fal_slots.in_use(10) == 1  # only the submitted job holds a slot
    assert stub_broker.queues["generation.DQ"].qsize() == 2  # req-1's poll, and the waiting segment's, both delayed
    stub.answers = ["req-2"]
    Segment.update({Segment.updated_at: utcnow() - dt.timedelta(minutes=1)}).where(Segment.id == first.id).execute()
    jobs.poll_segment(first.id)  # its poll, a while later, submits it again
    assert Segment.get_by_id(first.id).fal_request_id == "req-2" and fal_slots.in_use(10) == 2
    assert Call.get_by_id(call_id).caller_state == SideState.GENERATING


def test_a_refused_submit_fails_the_segment_at_once(call_with_segments, monkeypatch):
    call_id = call_with_segments
    refused = FalError("fal.ai answered 422: image_url: unsupported image", kind="rejected", status_code=422)
    stub = StubQueue(refused, refused)
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")  # not raised: nothing to retry
    first, second = caller_segments(call_id)
    assert first.state == SegmentState.FAILED and "not retried" in first.error
    # The side falls back whole: its second segment is not sent at all.
    assert second.state == SegmentState.FAILED and "cancelled: segment 0" in second.error and len(stub.submitted) == 1
    call = Call.get_by_id(call_id)
    assert call.caller_state == SideState.FAILED and "unsupported image" in call.caller_error
    assert call.compose_enqueued_at is not None  # the callee is silent: on to the compositor


def test_giving_up_on_a_side_fails_it_and_hands_the_call_on(call_with_segments):
    call_id = call_with_segments
    jobs.give_up_side(call_id, "caller", TransientError("fal.ai unreachable"))
    call = Call.get_by_id(call_id)
    assert call.caller_state == SideState.FAILED and "fal.ai unreachable" in call.caller_error
    assert all(s.state == SegmentState.FAILED for s in Segment.select().where(Segment.call_id == call_id))
    assert call.stage == Stage.COMPOSITOR and call.compose_enqueued_at is not None


def test_giving_up_on_a_poll_fails_its_segment(call_with_segments):
    call_id = call_with_segments
    first = Segment.get((Segment.call_id == call_id) & (Segment.index == 0))
    jobs.give_up_segment(first.id, RuntimeError("S3 is down"))
    first = Segment.get_by_id(first.id)
    assert first.state == SegmentState.FAILED and "S3 is down" in first.error
    # Its sibling's video could not be used: it ends too, and so does the side.
    second = Segment.get((Segment.call_id == call_id) & (Segment.index == 1))
    assert second.state == SegmentState.FAILED and "cancelled: segment 0" in second.error
    assert Call.get_by_id(call_id).caller_state == SideState.FAILED
    jobs.give_up_segment(987654, RuntimeError("gone"))  # an unknown segment is only logged


def test_a_sides_work_happens_in_a_generation_folder_of_the_call_that_goes_afterwards(call_with_segments, monkeypatch, tmp_path):
    """Named as the pipeline table says, so the generation worker's janitor sweeps one a killed worker left."""
    call_id, tmp_dir = call_with_segments, tmp_path / "tmp"
    seen = []

    class Looking(StubQueue):
        def submit(self, arguments):
            seen.extend(p.name for p in tmp_dir.iterdir())
            return super().submit(arguments)

    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: Looking("req-1", "req-2"))
    stage.generate_side(call_id, "caller")
    assert seen and all(name.startswith(f"generation-{call_id}-") for name in seen), seen
    assert list(tmp_dir.iterdir()) == []


def caller_segments(call_id: str) -> list[Segment]:
    return list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == "caller")).order_by(Segment.index))


def test_a_segment_failing_for_good_cancels_the_rest_of_its_side_at_once(sqlite_db, stub_broker, local_store, settings_env, monkeypatch):
    """The side falls back whole: its other jobs would be paid for and thrown away."""
    call_id = add_call(local_store, settings_env, segments=4)
    busy = FalError("fal.ai answered 503: unavailable", kind="transient", status_code=503)
    stub = StubQueue("req-0", "req-1", "req-2", busy)
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    with pytest.raises(TransientError):
        stage.generate_side(call_id, "caller")  # the fourth waits to be submitted again
    first = caller_segments(call_id)[0]
    jobs.fail_segment(first, "fal.ai job req-0 failed: Runner crashed (not retried)")

    assert sorted(stub.cancelled) == ["req-1", "req-2"]  # not req-0: it ended by itself
    rows = caller_segments(call_id)
    assert [s.state for s in rows] == [SegmentState.FAILED] * 4
    assert all("segment 0" in s.error and "cancelled" in s.error for s in rows[1:]), [s.error for s in rows]
    call = Call.get_by_id(call_id)
    assert call.caller_state == SideState.FAILED and call.compose_enqueued_at is not None  # no wait for the others
    # The waiting segment is never submitted: its next message finds it ended.
    stub.answers = ["req-3"]
    stage.generate_side(call_id, "caller")
    jobs.poll_segment(rows[3].id)
    assert len(stub.submitted) == 4 and stub.answers == ["req-3"]


def test_giving_up_on_a_side_cancels_its_jobs_at_fal(call_with_segments, monkeypatch):
    call_id = call_with_segments
    stub = StubQueue("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")
    jobs.give_up_side(call_id, "caller", TransientError("the database kept failing"))
    assert sorted(stub.cancelled) == ["req-1", "req-2"]
    assert all(s.state == SegmentState.FAILED for s in caller_segments(call_id))


def test_a_job_submitted_while_its_side_was_cancelled_is_cancelled_at_once(call_with_segments, monkeypatch):
    """The submit was on the wire when the side fell back: fal's answer is the id of a job nobody wants."""
    call_id = call_with_segments

    class Racing(StubQueue):
        def submit(self, arguments):
            if not self.submitted:
                jobs.cancel_unusable(call_id, "caller", reason="the side gave up")
            return super().submit(arguments)

    stub = Racing("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")
    assert stub.cancelled == ["req-1"] and len(stub.submitted) == 1
    first, second = caller_segments(call_id)
    assert first.state == second.state == SegmentState.FAILED and first.fal_request_id == "req-1"


def test_a_call_ended_elsewhere_has_its_jobs_cancelled(call_with_segments, monkeypatch, stub_broker):
    """The sweeper (or any give-up) ends the call in shared/: it asks the generation service to cancel."""
    call_id = call_with_segments
    stub = StubQueue("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")
    stub_broker.flush("generation.DQ")  # the polls: lost, as for a call the sweeper ends
    assert progress.fail_call(call_id, "Stuck in the generation stage")

    queue = stub_broker.queues["generation"]
    assert queue.qsize() == 1
    message = Message.decode(queue.get_nowait())
    assert (message.actor_name, message.kwargs) == (CANCEL_JOBS.actor_name, {"call_id": call_id})
    stage.cancel_jobs(call_id)
    assert sorted(stub.cancelled) == ["req-1", "req-2"]
    assert all(s.state == SegmentState.FAILED for s in caller_segments(call_id))
    stage.cancel_jobs(call_id)  # redelivered: nothing more to cancel
    assert len(stub.cancelled) == 2


def test_a_cancel_message_for_a_call_retried_since_cancels_nothing(call_with_segments, monkeypatch):
    call_id = call_with_segments
    stub = StubQueue("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")
    stage.cancel_jobs(call_id)  # the call is still live: its jobs are wanted
    assert stub.cancelled == []
    assert all(s.state == SegmentState.SUBMITTED for s in caller_segments(call_id))


def test_ending_a_call_with_nothing_at_fal_sends_nothing(call_with_segments, stub_broker):
    assert progress.fail_call(call_with_segments, "bad recording")
    assert stub_broker.queues["generation"].qsize() == 0


def test_each_fal_job_is_in_the_calls_history(call_with_segments, monkeypatch):
    """fal.submitted with the request id, then fal.completed / fal.failed / fal.cancelled (#28)."""
    from services.generation import lifecycle
    from shared import events

    call_id = call_with_segments
    stub = StubQueue("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_id, "caller")
    first, second = caller_segments(call_id)
    assert lifecycle.complete(first, {Segment.progress: "done"}, "done")
    jobs.give_up_side(call_id, "caller", TransientError("the database kept failing"))
    fal = [e for e in events.history(call_id) if e["kind"].startswith("fal.")]
    seen = [(e["kind"], e["detail"].get("request_id")) for e in fal]
    assert seen[:3] == [("fal.submitted", "req-1"), ("fal.submitted", "req-2"), ("fal.completed", "req-1")]
    assert ("fal.cancelled", "req-2") in seen[3:] and ("fal.submitted", "req-1") not in seen[3:]
    assert all(e["stage"] == "generation" and e["detail"]["side"] == "caller" for e in fal)


def test_a_call_that_would_pass_the_daily_budget_gets_local_panels_and_ends_partial(call_with_segments, monkeypatch, settings_env):
    """Two 10 s segments of stable-avatar ($0.10/s) estimate $2.00; $9.00 spent today leaves $1.00 of a $10 budget."""
    from prometheus_client import REGISTRY

    settings_env(FAL_DAILY_BUDGET_USD="10")
    make_call(fal_cost_usd=9.0)  # an earlier call today
    stub = StubQueue("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    before = REGISTRY.get_sample_value("callreel_fal_budget_exceeded_total", {"side": "caller"}) or 0
    stage.generate_side(call_with_segments, "caller")
    assert stub.submitted == []  # nothing reached fal.ai
    call = Call.get_by_id(call_with_segments)
    assert call.caller_state == SideState.FAILED and "FAL_DAILY_BUDGET_USD ($10.00)" in call.caller_error
    assert "estimated $2.00" in call.caller_error and "local panels" in call.caller_error
    assert call.fal_cost_usd == 0 and call.fal_cost_final
    assert REGISTRY.get_sample_value("callreel_fal_budget_exceeded_total", {"side": "caller"}) == before + 1
    assert call.compose_enqueued_at is not None  # on to the compositor, which renders the side's panel: partial


def test_within_the_budget_the_estimate_is_recorded_then_the_final_cost(call_with_segments, monkeypatch, settings_env):
    settings_env(FAL_DAILY_BUDGET_USD="10")
    stub = StubQueue("req-1", "req-2")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    stage.generate_side(call_with_segments, "caller")
    call = Call.get_by_id(call_with_segments)
    assert len(stub.submitted) == 2 and call.fal_cost_usd == 2.0 and not call.fal_cost_final
    from services.generation import costs
    from shared.fal_models import model_for

    Segment.update({Segment.state: SegmentState.COMPLETED}).where(Segment.index == 0).execute()  # segment 1 never made a video
    costs.finalize(call_with_segments, model_for("fal-ai/stable-avatar"))
    call = Call.get_by_id(call_with_segments)
    assert call.fal_cost_usd == 1.0 and call.fal_cost_final


def test_a_packed_segment_is_estimated_and_billed_once_for_its_pieces_added(call_with_segments):
    """Packing (#26): a job of three pieces (2.5 + 1.5 + 1 s, spanning 40 s of the call) bills 5 s, not its span nor 3 × 4 s."""
    from services.generation import costs
    from shared.fal_models import model_for

    model = model_for("fal-ai/stable-avatar")
    pieces = [[20.0, 22.5, 0.0], [30.0, 31.5, 2.5], [59.0, 60.0, 4.0]]
    Segment.update({Segment.start: 20.0, Segment.end: 60.0, Segment.pieces: pieces}).where(Segment.index == 1).execute()
    packed = Segment.get((Segment.call_id == call_with_segments) & (Segment.index == 1))
    assert packed.seconds == 5.0 and packed.pieces == pieces
    assert costs.estimate(call_with_segments, model) == pytest.approx(1.0 + 0.5)  # 10 s contiguous + 5 s packed, at $0.10
    # A packed job shorter than the minimum pays it once.
    Segment.update({Segment.pieces: [[20.0, 21.0, 0.0], [30.0, 31.5, 1.0]]}).where(Segment.index == 1).execute()
    assert costs.estimate(call_with_segments, model) == pytest.approx(1.0 + 0.4)
