import pytest
from dramatiq import Message

from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from shared.retry import RetryError, retry_call
from tests.support.calls import make_call

CALL = "CA" + "9" * 32


def drain(broker, queue):
    messages = []
    q = broker.queues[queue]
    while not q.empty():
        messages.append(q.get_nowait())
        q.task_done()  # or a later broker.join() on this queue waits forever
    return [(m.actor_name, m.kwargs) for m in map(Message.decode, messages)]


@pytest.fixture
def broker(sqlite_db, stub_broker):
    return stub_broker


def test_only_failed_or_partial_calls(broker):
    make_call(CALL, video_status=VideoStatus.GENERATING)
    with pytest.raises(RetryError):
        retry_call(CALL)
    with pytest.raises(RetryError):
        retry_call("CA" + "0" * 32)


def test_failed_download_restarts_at_ingest(broker):
    make_call(CALL, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500")
    assert retry_call(CALL) == Stage.INGEST
    assert drain(broker, "ingest") == [("download_recording", {"call_id": CALL})]
    call = Call.get_by_id(CALL)
    assert (call.video_status, call.stage, call.video_error_message) == (VideoStatus.PENDING, Stage.INGEST, None)


def test_partial_call_regenerates_only_the_failed_side(broker):
    now = utcnow()
    make_call(
        CALL, video_status=VideoStatus.PARTIAL, stage=Stage.DONE, ingest_finished_at=now, audio_finished_at=now,
        compositor_finished_at=now, caller_state=SideState.GENERATED, callee_state=SideState.FAILED,
        callee_error="fal timed out", compose_enqueued_at=now,
    )
    done = Segment.create(call_id=CALL, side="caller", index=0, start=0, end=5, state=SegmentState.COMPLETED, video_key="v")
    failed = Segment.create(call_id=CALL, side="callee", index=0, start=0, end=5, state=SegmentState.FAILED, attempts=3)
    assert retry_call(CALL) == Stage.GENERATION
    call = Call.get_by_id(CALL)
    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.PENDING
    assert call.compose_enqueued_at is None and call.compositor_finished_at is None
    assert Segment.get_by_id(done.id).state == SegmentState.COMPLETED
    assert (Segment.get_by_id(failed.id).state, Segment.get_by_id(failed.id).attempts) == (SegmentState.PENDING, 0)
    assert sorted(kw["side"] for _, kw in drain(broker, "generation")) == ["callee", "caller"]


def test_stitch_failure_recomposes(broker):
    now = utcnow()
    make_call(
        CALL, video_status=VideoStatus.PARTIAL, stage=Stage.DONE, ingest_finished_at=now, audio_finished_at=now,
        caller_state=SideState.LOCAL, callee_state=SideState.SILENT,
    )
    assert retry_call(CALL) == Stage.COMPOSITOR
    assert drain(broker, "compositor") == [("compose", {"call_id": CALL})]


def test_a_failed_send_leaves_the_call_as_it_was(broker, monkeypatch):
    make_call(CALL, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500")

    def refuse(*args, **kwargs):
        raise ConnectionError("broker unavailable")

    monkeypatch.setattr(type(broker), "enqueue", refuse)
    with pytest.raises(ConnectionError):
        retry_call(CALL)
    call = Call.get_by_id(CALL)
    assert (call.video_status, call.stage, call.video_error_message) == (VideoStatus.FAILED, Stage.DONE, "Twilio said 500")


def test_a_failed_transcription_is_retried_alone(broker):
    """The video is done, its words are not: only the failed speech-to-text jobs run again, then the compose."""
    from shared.models import TranscriptStatus
    from shared.speech_jobs import SpeechJob

    now = utcnow()
    Call.create(
        id=CALL, video_status=VideoStatus.COMPLETED, stage=Stage.DONE, ingest_finished_at=now, audio_finished_at=now,
        compositor_finished_at=now, caller_state=SideState.GENERATED, callee_state=SideState.GENERATED,
        compose_enqueued_at=now, transcript_status=TranscriptStatus.FAILED, transcript_error="1 of 2 speech-to-text job(s) failed",
    )
    heard = SpeechJob.create(call_id=CALL, side="caller", index=0, start=0, end=5, state=SegmentState.COMPLETED, attempts=1, chunks=[[0.5, 1.0, "hi"]])
    failed = SpeechJob.create(call_id=CALL, side="callee", index=0, start=0, end=5, state=SegmentState.FAILED, attempts=3, error="crashed", fal_request_id="r")
    assert retry_call(CALL) == Stage.GENERATION
    call = Call.get_by_id(CALL)
    assert (call.transcript_status, call.transcript_error) == (TranscriptStatus.NONE, None)
    assert (call.video_status, call.stage, call.compose_enqueued_at) == (VideoStatus.GENERATING, Stage.GENERATION, None)
    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.GENERATED  # no video made again
    assert SpeechJob.get_by_id(heard.id).state == SegmentState.COMPLETED
    again = SpeechJob.get_by_id(failed.id)
    assert (again.state, again.attempts, again.error, again.fal_request_id) == (SegmentState.PENDING, 0, None, None)
    assert sorted(kw["side"] for _, kw in drain(broker, "generation")) == ["callee", "caller"]


def test_a_completed_call_with_its_words_is_not_retried(broker):
    from shared.models import TranscriptStatus

    now = utcnow()
    for status in (TranscriptStatus.COMPLETED, TranscriptStatus.NONE, TranscriptStatus.SUPPLIED):
        Call.delete().execute()
        Call.create(
            id=CALL, video_status=VideoStatus.COMPLETED, stage=Stage.DONE, ingest_finished_at=now, audio_finished_at=now,
            compositor_finished_at=now, caller_state=SideState.GENERATED, callee_state=SideState.GENERATED, transcript_status=status,
        )
        with pytest.raises(RetryError):
            retry_call(CALL)


def test_processing_time_resumes_after_a_retry_without_the_time_the_call_sat_ended(sqlite_db, stub_broker):
    """A call that failed after 100 s and is retried an hour later shows 100 s of processing, not an hour (#28)."""
    import datetime as dt

    from shared.calls import processing_seconds

    now = utcnow()
    call_id = make_call(
        video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500",
        video_processing_started_at=now - dt.timedelta(seconds=3700), video_processing_completed_at=now - dt.timedelta(seconds=3600),
        video_processing_duration=100,
    ).id
    retry_call(call_id)
    assert processing_seconds(Call.get_by_id(call_id), utcnow()) == pytest.approx(100, abs=3)
