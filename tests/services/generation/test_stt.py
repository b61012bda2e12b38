"""Speech-to-text at fal.ai: the real generation worker against the fake fal server (fal-client unpatched).

Each segment's audio here is a real MP3 with tones where the side "speaks";
the fake's whisper hears those tones (silencedetect) and answers one chunk per
tone, with times from the start of the segment's audio, so where the turns
land on the call's timeline says whether the times were mapped back.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dramatiq
import pytest

from services.generation.stt import timeline_chunks
from shared import keys
from shared.contracts import GENERATE_SIDE, POLL_TRANSCRIPT
from shared.models import Call, SideState, Stage, TranscriptStatus, VideoStatus, utcnow
from shared.retry import retry_call
from shared.speech_jobs import SpeechJob, SpeechState
from shared.transcript import parse_transcript
from tests.support.fake_fal import Behaviour
from tests.support.fal_stub import StubQueue
from tests.support.media import ffmpeg

SOUNDS = ((0.5, 2.0), (3.0, 4.5))  # inside each segment's audio
SEGMENT_SECONDS = 6.0


def tones(path: Path, hz: int, sounds=SOUNDS, duration: float = SEGMENT_SECONDS) -> bytes:
    """A mono 8 kHz MP3, a tone inside each of ``sounds`` and silence elsewhere.

    (Each segment gets its own pitch: identical audio would let the video cache reuse one segment's video for another.)
    """
    gate = "+".join(f"between(t,{s},{e})" for s, e in sounds)
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=f={hz}:r=8000:d={duration}:samples_per_frame=80,volume='if({gate},0.5,0)':eval=frame",
        "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", str(path),
    )
    return path.read_bytes()


def speaking_call(generation, plan: dict[str, list[tuple[float, float]]]) -> str:
    data = {}
    for side, spans in plan.items():
        for index in range(len(spans or ())):
            data[(side, index)] = tones(generation.tmp / f"{side}-{index}.mp3", hz=300 + 150 * len(data))
    return generation.add_call(caller=plan.get("caller"), callee=plan.get("callee"), audio=data)


def transcript_of(generation, call_id: str):
    return parse_transcript(generation.object_bytes(keys.transcript_key(call_id)))


def speech_jobs(call_id: str) -> list[SpeechJob]:
    return list(SpeechJob.select().where(SpeechJob.call_id == call_id).order_by(SpeechJob.side, SpeechJob.index))


PLAN = {"caller": [(0.0, 6.0), (10.0, 16.0)], "callee": [(5.0, 11.0)]}


def test_both_sides_transcribed_onto_the_call_timeline(generation):
    call_id = speaking_call(generation, PLAN)
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id)

    # One job per segment, at STT_MODEL's default, with the documented input.
    jobs = generation.fake.accepted_speech()
    assert len(jobs) == 3
    for job in jobs:
        assert job.endpoint == "fal-ai/wizper"
        assert set(job.input) == {"audio_url", "task", "language", "chunk_level"}
        assert (job.input["task"], job.input["language"], job.input["chunk_level"]) == ("transcribe", "en", "segment")
        assert "Signature=" in job.input["audio_url"] and job.fetch_error is None
    assert {s["auth"] for s in generation.fake.speech_submissions} == {"Key test-key-0123"}
    # In parallel with the avatar jobs: every transcription was sent before the first video was made.
    videos = generation.fake.accepted()
    assert len(videos) == 3
    assert max(j.submitted_at for j in jobs) < min(j.finished_at for j in videos)

    assert call.transcript_status == TranscriptStatus.COMPLETED and call.transcript_error is None
    assert call.transcript_url == generation.storage.object_url(keys.transcript_key(call_id))
    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.GENERATED
    assert generation.compose_messages() == 1

    # Each tone, at its place in its segment, offset by the segment's start; both sides in time order.
    turns = transcript_of(generation, call_id).turns
    expected = sorted(
        (side, start + a, start + b, f"{call_id}-{side}-{index:03d} part {n}")
        for side, spans in PLAN.items()
        for index, (start, _) in enumerate(spans)
        for n, (a, b) in enumerate(SOUNDS, start=1)
    )
    got = sorted((t.speaker, t.start, t.end, t.text) for t in turns)
    assert [(s, x) for s, *_, x in got] == [(s, x) for s, *_, x in expected]
    for (_, start, end, _), (_, want_start, want_end, _) in zip(got, expected):
        assert start == pytest.approx(want_start, abs=0.1) and end == pytest.approx(want_end, abs=0.1)
    assert [t.start for t in turns] == sorted(t.start for t in turns)
    assert [t.speaker for t in turns][:3] == ["caller", "caller", "callee"]  # 0.5, 3.0, then the callee's 5.5
    assert all(j.state == SpeechState.COMPLETED and j.attempts == 1 for j in speech_jobs(call_id))


def test_failed_transcription_never_fails_the_video_and_a_retry_reruns_only_it(generation):
    fake = generation.fake
    call_id = speaking_call(generation, {"caller": [(0.0, 6.0)], "callee": [(5.0, 11.0)]})
    # The callee's transcription fails on every attempt (1 + FAL_MAX_RETRIES).
    fake.script_speech(f"{call_id}-callee-000", [Behaviour(outcome="error", queued_polls=0, running_polls=0)] * 3)
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id)

    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.GENERATED
    assert generation.compose_messages() == 1
    assert call.transcript_status == TranscriptStatus.FAILED
    assert "1 of 2 speech-to-text job(s) failed" in call.transcript_error and "callee segment 0" in call.transcript_error
    assert "Runner crashed" in call.transcript_error
    assert call.transcript_url is None and not generation.storage.exists(keys.transcript_key(call_id))
    callee_jobs = [j for j in fake.accepted_speech() if f"{call_id}-callee-000" in j.input["audio_url"]]
    assert len(callee_jobs) == 3

    # The compositor finished the video (without captions); the operator retries the call.
    now = utcnow()
    Call.update(
        {
            Call.video_status: VideoStatus.COMPLETED, Call.stage: Stage.DONE, Call.ingest_finished_at: now,
            Call.audio_finished_at: now, Call.compositor_started_at: now, Call.compositor_finished_at: now,
        }
    ).where(Call.id == call_id).execute()
    generation.broker.flush("compositor")  # the first compose message, as the compositor would have taken it
    previous = dramatiq.get_broker()
    dramatiq.set_broker(generation.broker)
    try:
        assert retry_call(call_id) == Stage.GENERATION
    finally:
        dramatiq.set_broker(previous)
    wait = generation.composed(call_id)
    assert wait.transcript_status == TranscriptStatus.COMPLETED, generation.describe(call_id)

    # Only the failed transcription ran again; no video job was sent again; the video is composed again.
    assert len(fake.accepted()) == 2
    speech = fake.accepted_speech()
    assert len([j for j in speech if f"{call_id}-caller-000" in j.input["audio_url"]]) == 1
    assert len([j for j in speech if f"{call_id}-callee-000" in j.input["audio_url"]]) == 4
    assert generation.compose_messages() == 1
    turns = transcript_of(generation, call_id).turns
    assert {t.speaker for t in turns} == {"caller", "callee"} and len(turns) == 4


def test_redelivered_messages_submit_nothing_twice(generation):
    fake = generation.fake
    call_id = speaking_call(generation, {"caller": [(0.0, 6.0)], "callee": [(5.0, 11.0)]})
    generation.worker()
    generation.generate(call_id)
    generation.generate(call_id)  # every generate_side delivered twice
    call = generation.composed(call_id)
    assert call.transcript_status == TranscriptStatus.COMPLETED
    assert len(fake.accepted_speech()) == 2 and len(fake.accepted()) == 2
    stored = generation.object_bytes(keys.transcript_key(call_id))

    # Late redeliveries of every message: nothing is sent to fal, nothing changes, one compose.
    generation.generate(call_id)
    for job in speech_jobs(call_id):
        generation.broker.enqueue(POLL_TRANSCRIPT.message(job_id=job.id))
    generation.broker.enqueue(GENERATE_SIDE.message(call_id=call_id, side="callee"))
    generation.broker.join("generation")
    assert len(fake.speech_submissions) == 2 and len(fake.submissions) == 2
    assert generation.object_bytes(keys.transcript_key(call_id)) == stored
    assert Call.get_by_id(call_id).transcript_status == TranscriptStatus.COMPLETED
    assert generation.compose_messages() == 1


def test_a_supplied_transcript_is_not_transcribed(generation):
    call_id = speaking_call(generation, {"caller": [(0.0, 6.0)], "callee": None})
    Call.update({Call.transcript_status: TranscriptStatus.SUPPLIED}).where(Call.id == call_id).execute()
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id)
    assert generation.fake.speech_submissions == [] and len(generation.fake.accepted()) == 1
    assert call.transcript_status == TranscriptStatus.SUPPLIED and not speech_jobs(call_id)


def test_undecodable_audio_fails_only_the_transcript(generation):
    """Audio the model cannot read: each attempt fails, the transcript fails with fal's reason, the video goes on."""
    call_id = generation.add_call(caller=[(0.0, 30.0)], callee=None)  # the harness's audio is not MP3
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id)
    assert call.caller_state == SideState.GENERATED and generation.compose_messages() == 1
    assert call.transcript_status == TranscriptStatus.FAILED and "Audio could not be decoded" in call.transcript_error
    assert [j.attempts for j in speech_jobs(call_id)] == [3]


# -- the mapping, alone ------------------------------------------------------------------------------


def test_chunk_times_are_offset_by_the_segment_and_kept_inside_it():
    result = {
        "text": "…",
        "chunks": [
            {"timestamp": [0.5, 2.0], "text": "  Hello   there. "},
            {"timestamp": [2.5, 2.5], "text": "Mm."},  # no length: shown briefly
            {"timestamp": [3.0, 4.0], "text": "   "},  # no words: dropped
            {"timestamp": [4.0, None], "text": "and the last"},  # whisper's open end: the segment's end
            {"timestamp": [5.5, 9.0], "text": "past the end"},  # clamped to the segment
        ],
    }
    assert timeline_chunks(result, 10.0, 16.0) == [
        [10.5, 12.0, "Hello there."],
        [12.5, 13.0, "Mm."],
        [14.0, 16.0, "and the last"],
        [15.5, 16.0, "past the end"],
    ]
    assert timeline_chunks({"text": "", "chunks": []}, 0.0, 5.0) == []
    for bad in ({"text": "no chunks"}, {"chunks": [{"text": "x"}]}, {"chunks": ["x"]}, ["x"]):
        with pytest.raises(ValueError):
            timeline_chunks(bad, 0.0, 5.0)


def test_a_packed_segments_chunks_are_mapped_to_the_call_piece_by_piece():
    """Packing (#26): the audio is [10, 12) then [20, 23) of the call then [40, 41) laid end to end (offsets 0, 2, 5)."""
    pieces = [[10.0, 12.0, 0.0], [20.0, 23.0, 2.0], [40.0, 41.0, 5.0]]
    result = {
        "chunks": [
            {"timestamp": [0.5, 1.5], "text": "hello there"},  # inside piece 0: moved by 10
            {"timestamp": [1.5, 4.0], "text": "one two three four five"},  # 0.5 s in piece 0, 2 s in piece 1: split 1 + 4 words
            {"timestamp": [4.2, 4.2], "text": "Mm."},  # no length: shown briefly, inside its piece
            {"timestamp": [4.8, None], "text": "all the way to the end"},  # piece 1's last 0.2 s and all of piece 2 (open end)
            {"timestamp": [None, 7.5], "text": "after"},  # past the audio: clamped (start follows the previous chunk)
            {"timestamp": [2.0, 2.5], "text": "   "},  # no words: dropped
        ],
    }
    assert timeline_chunks(result, 10.0, 41.0, pieces) == [
        [10.5, 11.5, "hello there"],
        [11.5, 12.0, "one"],
        [20.0, 22.0, "two three four five"],
        [22.2, 22.7, "Mm."],
        [22.8, 23.0, "all"],
        [40.0, 41.0, "the way to the end"],
    ]
    # A chunk never straddles the other side's turn: every one lies inside one piece.
    for start, end, _ in timeline_chunks(result, 10.0, 41.0, pieces):
        assert any(a <= start < end <= b for a, b, _ in pieces)
    # Without pieces (a contiguous segment) the times are only moved by the segment's start, as before.
    assert timeline_chunks({"chunks": [{"timestamp": [0.5, 1.5], "text": "x"}]}, 10.0, 41.0, None) == [[10.5, 11.5, "x"]]


# -- submission trouble, with fal.ai replaced by a stub ----------------------------------------------


@pytest.fixture
def quiet_call(sqlite_db, stub_broker, local_store, settings_env, monkeypatch):
    """A call whose caller has one segment and whose callee is silent; video jobs go to a stub that accepts them."""
    from services.generation import jobs
    from shared.models import Segment

    settings_env(FAL_KEY="k")
    monkeypatch.setattr(jobs, "fal_queue", lambda key, endpoint: StubQueue("video-1"))
    call_id = "CA" + uuid.uuid4().hex
    Call.create(id=call_id, stage=Stage.GENERATION, video_status=VideoStatus.PENDING, callee_state=SideState.SILENT)
    key = keys.segment_audio_key(call_id, "caller", 0)
    local_store.path(key).parent.mkdir(parents=True, exist_ok=True)
    local_store.path(key).write_bytes(b"ID3 audio")
    Segment.create(call_id=call_id, side="caller", index=0, start=0, end=10, audio_key=key)
    return call_id


def test_fal_busy_at_submit_leaves_the_job_to_its_poll(quiet_call, monkeypatch, stub_broker):
    from services.generation import stage, stt
    from services.generation.fal import FalError

    busy = StubQueue(FalError("fal.ai answered 429: slow down", kind="transient", status_code=429))
    monkeypatch.setattr(stt, "fal_queue", lambda key, endpoint: busy)
    stage.generate_side(quiet_call, "caller")  # not raised: the video job went on
    (job,) = speech_jobs(quiet_call)
    assert job.state == SpeechState.PENDING and job.attempts == 0 and "429" in job.progress
    assert Call.get_by_id(quiet_call).transcript_status == TranscriptStatus.TRANSCRIBING
    delayed = [dramatiq.Message.decode(m) for m in list(stub_broker.queues["generation.DQ"].queue)]
    assert {(m.actor_name, tuple(m.kwargs.values())) for m in delayed} >= {("poll_transcript", (job.id,))}


def test_a_refused_submit_fails_the_transcript_at_once_and_the_call_goes_on(quiet_call, monkeypatch):
    from services.generation import stage, stt
    from services.generation.fal import FalError

    refused = FalError("fal.ai answered 422: language: value is not a valid enumeration member", kind="rejected", status_code=422)
    monkeypatch.setattr(stt, "fal_queue", lambda key, endpoint: StubQueue(refused))
    stage.generate_side(quiet_call, "caller")
    (job,) = speech_jobs(quiet_call)
    assert job.state == SpeechState.FAILED and "not retried" in job.error
    call = Call.get_by_id(quiet_call)
    assert call.transcript_status == TranscriptStatus.FAILED and "valid enumeration member" in call.transcript_error
    assert call.caller_state == SideState.GENERATING  # its video job is still at fal: the fan-in waits for it, not for the words
    assert call.compose_enqueued_at is None


def test_giving_up_on_storing_the_transcript_fails_it_and_hands_the_call_on(quiet_call):
    from services.generation import stt
    from shared.models import Segment, SegmentState

    Segment.update({Segment.state: SegmentState.COMPLETED, Segment.video_key: "v"}).execute()
    Call.update({Call.caller_state: SideState.GENERATED, Call.transcript_status: TranscriptStatus.TRANSCRIBING}).execute()
    job = SpeechJob.create(call_id=quiet_call, side="caller", index=0, start=0, end=10, state=SpeechState.COMPLETED, chunks=[[1.0, 2.0, "hi"]])
    stt.give_up_job(job.id, RuntimeError("S3 is down"))
    call = Call.get_by_id(quiet_call)
    assert call.transcript_status == TranscriptStatus.FAILED and "S3 is down" in call.transcript_error
    assert call.compose_enqueued_at is not None


class CancellingStub(StubQueue):
    def __init__(self, *answers) -> None:
        super().__init__(*answers)
        self.cancelled: list[str] = []

    def cancel(self, request_id):
        self.cancelled.append(request_id)


def two_speech_jobs_at_fal(call_id: str, local_store, monkeypatch) -> CancellingStub:
    """The quiet call with a second caller segment, both its speech-to-text jobs submitted."""
    from services.generation import jobs, stage, stt
    from shared.models import Segment

    key = keys.segment_audio_key(call_id, "caller", 1)
    local_store.path(key).write_bytes(b"ID3 audio 1")
    Segment.create(call_id=call_id, side="caller", index=1, start=10, end=20, audio_key=key)
    # One queue per endpoint, as fal_queue gives: the speech-to-text model's is the stub watched here.
    stub, videos = CancellingStub("stt-1", "stt-2"), CancellingStub("video-1", "video-2")

    def by_endpoint(key, endpoint):
        return stub if endpoint == "fal-ai/wizper" else videos

    monkeypatch.setattr(jobs, "fal_queue", by_endpoint)
    monkeypatch.setattr(stt, "fal_queue", by_endpoint)
    stage.generate_side(call_id, "caller")
    assert [j.fal_request_id for j in speech_jobs(call_id)] == ["stt-1", "stt-2"]
    return stub


def test_a_speech_job_failing_for_good_cancels_the_others(quiet_call, local_store, monkeypatch):
    """One failed job and no transcript is stored: the other jobs' words would be paid for in vain."""
    from services.generation import stt

    stub = two_speech_jobs_at_fal(quiet_call, local_store, monkeypatch)
    first, _ = speech_jobs(quiet_call)
    stt.fail_job(first, "fal.ai job stt-1 failed: Runner crashed (not retried)")
    assert stub.cancelled == ["stt-2"]
    assert [j.state for j in speech_jobs(quiet_call)] == [SpeechState.FAILED] * 2
    assert Call.get_by_id(quiet_call).transcript_status == TranscriptStatus.FAILED  # at once, not when stt-2 ends


def test_an_ended_call_has_its_speech_jobs_cancelled_too(quiet_call, local_store, monkeypatch, stub_broker):
    from services.generation import stage
    from shared import progress

    stub = two_speech_jobs_at_fal(quiet_call, local_store, monkeypatch)
    stub_broker.flush("generation.DQ")
    assert progress.fail_call(quiet_call, "Stuck in the generation stage")
    [message] = [dramatiq.Message.decode(m) for m in list(stub_broker.queues["generation"].queue)]
    assert message.actor_name == "cancel_jobs"
    stage.cancel_jobs(quiet_call)
    assert sorted(stub.cancelled) == ["stt-1", "stt-2"]
    assert [j.state for j in speech_jobs(quiet_call)] == [SpeechState.FAILED] * 2
