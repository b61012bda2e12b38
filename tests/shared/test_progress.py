import json
import logging

from shared import progress
from shared.logs import JsonFormatter
from shared.models import Call, Stage, VideoStatus
from tests.support.calls import make_call

CALL = "CA" + "7" * 32


def test_stage_lifecycle(sqlite_db):
    make_call(CALL)
    call = progress.begin(CALL, Stage.INGEST)
    assert call.stage == Stage.INGEST and call.ingest_attempts == 1 and call.ingest_started_at
    assert call.video_processing_started_at == call.ingest_started_at
    progress.finish(CALL, Stage.INGEST, recording_channels=2)
    progress.advance(CALL, Stage.INGEST, Stage.AUDIO)
    call = Call.get_by_id(CALL)
    assert call.stage == Stage.AUDIO and call.ingest_finished_at and call.recording_channels == 2
    # A redelivered ingest message is skipped: the call has moved on.
    assert progress.begin(CALL, Stage.INGEST) is None
    # advance never moves a call backwards or from a stage it is not in.
    progress.advance(CALL, Stage.INGEST, Stage.AUDIO)
    assert progress.begin(CALL, Stage.AUDIO).audio_attempts == 1
    assert progress.begin(CALL, Stage.AUDIO).audio_attempts == 2


def test_fail_call_once(sqlite_db):
    make_call(CALL)
    progress.begin(CALL, Stage.AUDIO)
    assert progress.fail_call(CALL, "recording is mono") is True
    call = Call.get_by_id(CALL)
    assert (call.video_status, call.video_error_message, call.stage) == (VideoStatus.FAILED, "recording is mono", Stage.DONE)
    assert call.video_processing_completed_at and call.video_processing_duration >= 0
    # An ended call is not overwritten by a late failure, nor restarted.
    assert progress.fail_call(CALL, "something else") is False
    assert Call.get_by_id(CALL).video_error_message == "recording is mono"
    assert progress.begin(CALL, Stage.COMPOSITOR) is None
    assert progress.fail_call("CA" + "8" * 32, "unknown") is False


def test_json_log_lines_carry_call_and_stage():
    record = logging.LogRecord("callreel", logging.INFO, __file__, 1, "split done in %.2fs", (1.5,), None)
    record.call_id, record.stage, record.duration = CALL, "audio", 1.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "split done in 1.50s"
    assert (entry["call_id"], entry["stage"], entry["duration"]) == (CALL, "audio", 1.5)


def test_begin_never_moves_a_call_back(sqlite_db, monkeypatch):
    """A call moved on between begin's read and its write (another worker advanced it) stays where it is."""
    make_call(CALL, stage=Stage.GENERATION)
    read = Call.get_or_none

    def read_then_advance(*args, **kwargs):
        call = read(*args, **kwargs)
        Call.update(stage=Stage.COMPOSITOR).where(Call.id == CALL).execute()  # the other worker, just now
        return call

    monkeypatch.setattr(Call, "get_or_none", read_then_advance)
    assert progress.begin(CALL, Stage.GENERATION) is None
    monkeypatch.undo()
    assert Call.get_by_id(CALL).stage == Stage.COMPOSITOR
