"""``split_channels`` through the in-process broker and worker, with S3 over HTTP and a real database."""

from __future__ import annotations

import pytest

from services.audio.probe import MONO
from shared import keys
from shared.errors import PermanentError
from shared.models import Call, Segment, SideState, Stage, VideoStatus
from tests.support import media
from tests.support.outcomes import recording_outcomes
from tests.support.processes import wait_gone

from .conftest import CALL_ID, queued, tmp_entries

CALLER = ((0.5, 3.0), (4.0, 4.6))
CALLEE = ((1.5, 3.5),)


def generation_messages(broker) -> list[dict]:
    return sorted((kwargs for name, kwargs in queued(broker, "generation") if name == "generate_side"), key=lambda k: k["side"])


def near(found, expected, tolerance=0.2):
    return len(found) == len(expected) and all(
        abs(a - c) <= tolerance and abs(b - d) <= tolerance for (a, b), (c, d) in zip(found, expected)
    )


@pytest.fixture
def db(pg_db):
    return pg_db


def test_split_measure_and_hand_on(db, s3, make_call, split, stub_broker, tmp_path, settings_env):
    settings = settings_env()
    make_call(media.tone_call(tmp_path / "call.mp3", 5.0, CALLER, CALLEE))
    split()

    call = Call.get_by_id(CALL_ID)
    assert (call.stage, call.video_status, call.audio_attempts) == (Stage.GENERATION, VideoStatus.PENDING, 1)
    assert call.audio_finished_at is not None
    assert call.audio_duration == call.caller_duration == call.callee_duration == pytest.approx(5.0, abs=0.01)
    assert near(call.caller_speech, CALLER) and near(call.callee_speech, CALLEE)
    assert all(round(x, 2) == x for pair in call.caller_speech + call.callee_speech for x in pair)
    assert (call.caller_state, call.callee_state) == (SideState.PENDING, SideState.PENDING)

    for side, hz in (("caller", 440), ("callee", 880)):
        local = tmp_path / f"{side}.mp3"
        s3.download_file(keys.side_audio_key(CALL_ID, side), local)
        assert media.probe(local)["streams"][0]["channels"] == 1
        assert media.dominant_hz(media.pcm(local, 2.0, 2.25)) == hz
    head = s3.client.head_object(Bucket=s3.bucket, Key=keys.side_audio_key(CALL_ID, "caller"))
    assert head["ContentType"] == "audio/mpeg"

    assert generation_messages(stub_broker) == [{"call_id": CALL_ID, "side": "callee"}, {"call_id": CALL_ID, "side": "caller"}]
    assert Segment.select().count() == 0  # no FAL_KEY: nothing to cut
    assert tmp_entries(settings) == []


def test_silent_side_is_recorded_and_still_handed_on(db, make_call, split, stub_broker, tmp_path):
    make_call(media.tone_call(tmp_path / "call.mp3", 3.0, CALLER[:1], ()))
    split()
    call = Call.get_by_id(CALL_ID)
    assert (call.caller_state, call.callee_state) == (SideState.PENDING, SideState.SILENT)
    assert call.callee_speech == []
    assert [m["side"] for m in generation_messages(stub_broker)] == ["callee", "caller"]


def test_a_call_where_neither_side_speaks_is_marked_no_speech(db, make_call, split, stub_broker, tmp_path):
    make_call(media.tone_call(tmp_path / "call.mp3", 3.0, (), ()))
    split()
    call = Call.get_by_id(CALL_ID)
    assert (call.caller_state, call.callee_state) == (SideState.SILENT, SideState.SILENT)
    assert call.no_speech is True


def test_a_call_where_one_side_speaks_is_not_no_speech(db, make_call, split, stub_broker, tmp_path):
    make_call(media.tone_call(tmp_path / "call.mp3", 3.0, CALLER[:1], ()))
    split()
    assert Call.get_by_id(CALL_ID).no_speech is False


def test_swapped_mapping(db, s3, make_call, split, tmp_path, settings_env):
    settings_env(CALLER_CHANNEL="right")
    make_call(media.tone_call(tmp_path / "call.mp3", 5.0, CALLER, CALLEE))
    split()
    call = Call.get_by_id(CALL_ID)
    assert near(call.caller_speech, CALLEE) and near(call.callee_speech, CALLER)
    s3.download_file(keys.side_audio_key(CALL_ID, "caller"), tmp_path / "caller.mp3")
    assert media.dominant_hz(media.pcm(tmp_path / "caller.mp3", 2.0, 2.25)) == 880


def _mono(tmp_path):
    return media.mono_file(tmp_path / "mono.mp3")


def _corrupt(tmp_path):
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40)
    return path


def _truncated(tmp_path):
    whole = media.tone_call(tmp_path / "whole.mp3", 5.0, CALLER, CALLEE).read_bytes()
    path = tmp_path / "truncated.mp3"
    path.write_bytes(whole[: len(whole) // 6])
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    "make_recording, reason",
    [
        (_mono, MONO),
        (_corrupt, "not an audio file"),
        (_truncated, "recording is truncated or corrupt"),
        (_empty, "recording is empty (0 bytes)"),
        (None, f"recording is missing from storage ({keys.recording_key(CALL_ID)})"),
    ],
    ids=["mono", "corrupt", "truncated", "zero-length", "missing"],
)
def test_bad_recording_fails_the_call_once(db, s3, make_call, split, stub_broker, tmp_path, settings_env, make_recording, reason):
    settings = settings_env()
    make_call(make_recording(tmp_path) if make_recording else None)
    split()
    call = Call.get_by_id(CALL_ID)
    assert call.video_status == VideoStatus.FAILED and call.stage == Stage.DONE
    assert call.video_error_message.startswith(reason)
    assert str(settings.tmp_dir) not in call.video_error_message  # the operator sees the reason, not our temp paths
    assert call.audio_attempts == 1  # a bad file is not retried
    assert call.audio_finished_at is None
    assert queued(stub_broker, "generation") == []
    assert not s3.exists(keys.side_audio_key(CALL_ID, "caller"))
    assert tmp_entries(settings) == []


def test_redelivery_does_not_split_or_hand_on_twice(db, s3, make_call, split, stub_broker, tmp_path):
    make_call(media.tone_call(tmp_path / "call.mp3", 3.0, CALLER[:1], CALLEE))
    split()
    assert len(generation_messages(stub_broker)) == 2
    s3.delete(keys.side_audio_key(CALL_ID, "caller"))  # a second split would put it back

    split()  # RabbitMQ delivers the same message again
    call = Call.get_by_id(CALL_ID)
    assert (call.stage, call.audio_attempts) == (Stage.GENERATION, 1)
    assert len(generation_messages(stub_broker)) == 2
    assert not s3.exists(keys.side_audio_key(CALL_ID, "caller"))


def test_redelivery_after_finish_only_hands_on(db, s3, make_call, split, stub_broker, tmp_path):
    """A worker killed between finish and advance: the work is kept, the hand-on is redone."""
    make_call(media.tone_call(tmp_path / "call.mp3", 3.0, CALLER[:1], CALLEE))
    split()
    stub_broker.flush("generation")
    s3.delete(keys.side_audio_key(CALL_ID, "caller"))
    Call.update(stage=Stage.AUDIO).where(Call.id == CALL_ID).execute()

    split()
    call = Call.get_by_id(CALL_ID)
    assert call.stage == Stage.GENERATION
    assert not s3.exists(keys.side_audio_key(CALL_ID, "caller"))
    assert [m["side"] for m in generation_messages(stub_broker)] == ["callee", "caller"]


def test_failing_ffmpeg_is_retried_twice(db, make_call, split, stub_broker, tmp_path, settings_env):
    broken = tmp_path / "broken-ffmpeg"
    broken.write_text("#!/bin/sh\necho 'Conversion failed: Resource temporarily unavailable' >&2\nexit 1\n")
    broken.chmod(0o755)
    settings = settings_env(FFMPEG_BINARY=str(broken))
    make_call(media.tone_call(tmp_path / "call.mp3", 2.0))
    split(min_backoff=10, max_backoff=20)
    call = Call.get_by_id(CALL_ID)
    assert call.audio_attempts == 3
    assert call.video_status == VideoStatus.FAILED
    assert call.video_error_message == "ffmpeg could not split the recording: Conversion failed: Resource temporarily unavailable"
    assert tmp_entries(settings) == []


def test_ffmpeg_meeting_a_full_disk_is_retried_past_the_budget_and_named(db, make_call, split, stub_broker, tmp_path, settings_env, monkeypatch):
    """#25 D5: ENOSPC is TMP_DIR's failure: retried for STORAGE_OUTAGE_TOLERANCE, not the stage's two retries."""
    from shared import outage

    monkeypatch.setattr(outage, "FIRST_DELAY_MS", 20)
    monkeypatch.setattr(outage, "MAX_DELAY_MS", 200)
    full = tmp_path / "full-ffmpeg"
    full.write_text("#!/bin/sh\necho 'Conversion failed: No space left on device' >&2\nexit 1\n")
    full.chmod(0o755)
    # 3 s: room for more than the stage's own 3 attempts even when each takes half a second (a loaded machine).
    settings = settings_env(FFMPEG_BINARY=str(full), STORAGE_OUTAGE_TOLERANCE="3")
    make_call(media.tone_call(tmp_path / "call.mp3", 2.0))
    split(min_backoff=10, max_backoff=20)
    call = Call.get_by_id(CALL_ID)
    assert call.audio_attempts > 3
    assert call.video_status == VideoStatus.FAILED
    assert call.video_error_message.startswith(f"no space left in TMP_DIR ({settings.tmp_dir}")
    assert "STORAGE_OUTAGE_TOLERANCE=3" in call.video_error_message
    assert tmp_entries(settings) == []


def test_timeout_kills_ffmpeg_and_cleans_up(db, make_call, split, stub_broker, tmp_path, settings_env, slow_ffmpeg):
    wrapper, pids = slow_ffmpeg
    settings = settings_env(FFMPEG_BINARY=str(wrapper), SPLIT_TIMEOUT="1")
    make_call(media.tone_call(tmp_path / "call.mp3", 30.0, CALLER, CALLEE))  # -re: 30 s unless killed
    split(max_retries=0)
    call = Call.get_by_id(CALL_ID)
    assert call.video_status == VideoStatus.FAILED
    assert call.video_error_message == "splitting took longer than SPLIT_TIMEOUT (1 s); ffmpeg was killed"
    wait_gone(int((pids / "ffmpeg").read_text()))
    assert tmp_entries(settings) == []


def test_wav_recording_on_sqlite(sqlite_db, s3, make_call, split, tmp_path):
    make_call(media.tone_call(tmp_path / "call.wav", 5.0, CALLER, CALLEE))
    split()
    call = Call.get_by_id(CALL_ID)
    assert call.stage == Stage.GENERATION and call.audio_duration == 5.0
    assert near(call.caller_speech, CALLER, 0.05) and near(call.callee_speech, CALLEE, 0.05)


def test_unknown_call_and_invalid_id_are_dropped(db, split, stub_broker):
    with recording_outcomes(stub_broker) as outcomes:
        split(call_id="CA" + "0" * 32)
        split(call_id="../../etc/passwd")
    assert queued(stub_broker, "generation") == []
    assert Call.select().count() == 0
    # Each ran once and ended as meant: the unknown call quietly, the invalid id refused for good (not retried).
    assert [(o.kwargs["call_id"], type(o.exception), o.retries) for o in outcomes] == [
        ("CA" + "0" * 32, type(None), 0), ("../../etc/passwd", PermanentError, 0),
    ]


def test_dramatiq_time_limit_also_kills_ffmpeg(db, make_call, split, tmp_path, settings_env, slow_ffmpeg):
    """Dramatiq interrupts the worker thread, not FFmpeg: the interrupted wait still kills the group."""
    wrapper, pids = slow_ffmpeg
    settings = settings_env(FFMPEG_BINARY=str(wrapper), SPLIT_TIMEOUT="600")
    make_call(media.tone_call(tmp_path / "call.mp3", 30.0, CALLER, CALLEE))  # -re: 30 s unless killed
    split(time_limit=1000, max_retries=0)
    assert Call.get_by_id(CALL_ID).video_status == VideoStatus.FAILED
    wait_gone(int((pids / "ffmpeg").read_text()))
    assert tmp_entries(settings) == []


def test_a_call_longer_than_max_call_seconds_fails_at_the_audio_stage_before_fal(db, s3, make_call, split, stub_broker, tmp_path, settings_env):
    """The cost guard (#26): with fal.ai on, nothing is cut, stored or sent for a call past MAX_CALL_SECONDS."""
    settings_env(MAX_CALL_SECONDS="4", FAL_KEY="cost-guard-key")
    make_call(media.tone_call(tmp_path / "call.mp3", 5.0, CALLER, CALLEE))
    split()
    call = Call.get_by_id(CALL_ID)
    assert call.video_status == VideoStatus.FAILED and call.stage == Stage.DONE
    assert call.video_error_message.startswith("the call lasts 5 s, longer than MAX_CALL_SECONDS (4 s): not sent to fal.ai")
    assert call.audio_attempts == 1  # not retried
    assert Segment.select().count() == 0 and queued(stub_broker, "generation") == []
