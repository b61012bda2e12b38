"""Submission trouble and giving up, with fal.ai replaced by a stub (the worker-process tests use the real client)."""

from __future__ import annotations

import pytest

from services.generation import jobs, stage
from services.generation.fal import FalError
from shared import keys
from shared.errors import TransientError
from shared.models import Call, Segment, SegmentState, SideState, Stage, TranscriptStatus, VideoStatus
from tests.support.calls import make_call


class StubQueue:
    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.submitted: list[dict] = []

    def submit(self, arguments):
        self.submitted.append(arguments)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def call_with_segments(sqlite_db, stub_broker, local_store, settings_env):
    settings_env(FAL_KEY="k")
    # A transcript was supplied: these tests are about the video jobs (test_stt.py has the speech-to-text ones).
    call_id = make_call(
        stage=Stage.GENERATION, video_status=VideoStatus.PENDING, callee_state=SideState.SILENT,
        transcript_status=TranscriptStatus.SUPPLIED,
    ).id
    for index in range(2):
        key = keys.segment_audio_key(call_id, "caller", index)
        path = local_store.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"ID3 audio %d" % index)
        Segment.create(call_id=call_id, side="caller", index=index, start=index * 10, end=index * 10 + 10, audio_key=key)
    return call_id


def test_transient_submit_trouble_spends_no_attempt_and_retries_the_message(call_with_segments, monkeypatch, stub_broker):
    call_id = call_with_segments
    stub = StubQueue(FalError("fal.ai answered 429: slow down", kind="transient", status_code=429), "req-1")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: stub)
    with pytest.raises(TransientError, match="429"):
        stage.generate_side(call_id, "caller")
    first, second = Segment.select().where(Segment.call_id == call_id).order_by(Segment.index)
    assert first.state == SegmentState.PENDING and first.attempts == 0 and "429" in first.progress
    assert second.state == SegmentState.SUBMITTED and second.fal_request_id == "req-1"  # the others went on
    call = Call.get_by_id(call_id)
    assert call.fal_job_id == "req-1" and call.video_status == VideoStatus.GENERATING
    assert call.caller_state == SideState.GENERATING
    assert stub_broker.queues["generation.DQ"].qsize() == 1  # req-1's first poll, delayed
    # Dramatiq runs the message again: only the pending segment is submitted this time.
    stub.answers = ["req-2"]
    stage.generate_side(call_id, "caller")
    assert [a["audio_url"].rsplit("/", 1)[1] for a in stub.submitted[-1:]] == [f"{call_id}-caller-000.mp3"]
    assert Call.get_by_id(call_id).fal_job_id == "req-1,req-2"


def test_a_refused_submit_fails_the_segment_at_once(call_with_segments, monkeypatch):
    call_id = call_with_segments
    refused = FalError("fal.ai answered 422: image_url: unsupported image", kind="rejected", status_code=422)
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: StubQueue(refused, refused))
    stage.generate_side(call_id, "caller")  # not raised: nothing to retry
    rows = list(Segment.select().where(Segment.call_id == call_id))
    assert all(s.state == SegmentState.FAILED and "not retried" in s.error for s in rows)
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
    assert Call.get_by_id(call_id).caller_state == SideState.PENDING  # its sibling has not ended yet
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
