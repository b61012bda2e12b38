"""Chunks rendered while the call is still in generation (services/compositor/early.py): real FFmpeg, PostgreSQL and S3.

A 12 s call with COMPOSE_CHUNK_SECONDS=4 is three chunks; the caller is
generated in three 4 s segments, the callee is a local panel. Segment 0 and
its words are stored first: chunk 0 is rendered then, and the compose, once
every segment is stored, joins it as it is (not rendered again) when its
inputs are what they were, and renders it again when they are not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.compositor import chunks, early
from shared import keys
from shared.compose_chunks import ChunkState, ComposeChunk
from shared.models import Call, Segment, Stage
from shared.speech_jobs import SpeechJob
from shared.transcript import Transcript, Turn, to_json

from .test_chunks import audio_samples, compare, frame_count, s3_keys
from .test_composer import compose, fetch_video

FPS = 25
SEGMENTS = ((0.0, 4.0, "red"), (4.0, 8.0, "green"), (8.0, 12.0, "blue"))
#: The words speech-to-text hears in each caller segment (on the call's timeline); the first is on screen up to the 4 s join.
WORDS = ([[2.5, 3.9, "words up to the join"]], [[4.5, 6.0, "more words here"]], [[8.5, 10.0, "the last words"]])


@pytest.fixture
def generating(calls):
    """The call in generation: segment 0 of the caller and its words stored, segments 1 and 2 still at fal."""
    call = calls.call(
        duration=12.0,
        caller_speech=((0.5, 3.0), (4.5, 7.0), (8.5, 11.0)),
        callee_speech=((3.2, 4.2), (7.2, 8.2)),
        caller_state="generating",
        stage=Stage.GENERATION,
        transcript_status="transcribing",
    )
    for index, (start, end, colour) in enumerate(SEGMENTS):
        video = calls.video(f"seg{index}", colour, duration=4.0) if index == 0 else None
        calls.segment(call, "caller", index, start, end, video, state="completed" if index == 0 else "submitted")
        SpeechJob.create(
            call_id=call.id, side="caller", index=index, start=start, end=end,
            state="completed" if index == 0 else "submitted", chunks=WORDS[index] if index == 0 else None,
        )
    return call


def finish(calls, call, *, shape: str = "512x512") -> None:
    """The rest of generation: segments 1 and 2 stored (their videos of ``shape``), the transcript stored, the fan-in."""
    for index in (1, 2):
        start, end, colour = SEGMENTS[index]
        video = calls.video(f"seg{index}-{shape}", colour, duration=4.0, size=shape)
        calls.storage.upload_file(video, keys.segment_video_key(call.id, "caller", index), content_type="video/mp4")
        Segment.update(state="completed", video_key=keys.segment_video_key(call.id, "caller", index)).where(
            (Segment.call_id == call.id) & (Segment.index == index)
        ).execute()
        SpeechJob.update(state="completed", chunks=WORDS[index]).where((SpeechJob.call_id == call.id) & (SpeechJob.index == index)).execute()
    turns = tuple(Turn("caller", s, e, text) for words in WORDS for s, e, text in words)
    transcript = calls.workdir / f"{call.id}.json"
    transcript.write_text(to_json(Transcript(turns)), encoding="utf-8")
    calls.storage.upload_file(transcript, keys.transcript_key(call.id), content_type="application/json")
    Call.update(caller_state="generated", transcript_status="completed", stage=Stage.COMPOSITOR).where(Call.id == call.id).execute()


@pytest.fixture
def renders(monkeypatch):
    """Every chunk window FFmpeg renders, in order."""
    seen: list[tuple[int, int]] = []
    real = chunks.render_chunk
    monkeypatch.setattr(chunks, "render_chunk", lambda *a, **k: seen.append(a[1]) or real(*a, **k))
    return seen


def chunk_row(call_id: str, index: int) -> ComposeChunk:
    return ComposeChunk.get((ComposeChunk.call_id == call_id) & (ComposeChunk.index == index))


def test_a_chunk_rendered_early_is_joined_as_it_is_and_the_video_is_the_one_pass_render(
    generating, calls, s3, settings_env, stub_broker, renders, monkeypatch, tmp_path
):
    settings = settings_env(COMPOSE_CHUNK_SECONDS="4")
    runs: list[str] = []
    real_run = chunks.run_ffmpeg
    monkeypatch.setattr(chunks, "run_ffmpeg", lambda *a, **k: runs.append(k["what"]) or real_run(*a, **k))
    found = early.ready(Call.get_by_id(generating.id), settings)
    assert found is not None and found.indexes == [0]  # chunks 1 and 2 show segments still at fal
    early.prerender(generating.id)
    early.prerender(generating.id)  # redelivered: chunk 0 is done, nothing is rendered again
    assert renders == [(0, 100)]
    row = chunk_row(generating.id, 0)
    assert (row.state, row.attempts) == (ChunkState.DONE, 1)
    sound = chunk_row(generating.id, chunks.SOUND)  # the sound track too: it needs only the recording
    assert sound.state == ChunkState.DONE and s3.exists(sound.video_key) and runs.count("sound track") == 1
    assert early.ready(Call.get_by_id(generating.id), settings) is None
    assert Call.get_by_id(generating.id).stage == Stage.GENERATION  # the early chunk is a cache: the stage is generation's

    finish(calls, generating)
    outcome = compose(generating, s3)
    assert outcome.status == "completed"
    # The final spec gave chunk 0 the digest it was rendered with: joined from the store, not rendered again.
    assert renders == [(0, 100), (100, 200), (200, 300)]
    assert runs.count("sound track") == 1  # and the sound track rendered early is muxed as it is
    joined = fetch_video(s3, generating.id, tmp_path / "joined.mp4")

    settings_env(COMPOSE_CHUNK_SECONDS="0")
    assert compose(generating, s3).status == "completed"
    whole = fetch_video(s3, generating.id, tmp_path / "whole.mp4")
    assert frame_count(joined) == frame_count(whole) == 12 * FPS
    assert audio_samples(joined) == audio_samples(whole)
    # Chunk 0's frames, its caption up to the join included, are the one-pass render's.
    for at in (1.0, 3.0, 3.96, 4.0, 5.0, 8.0):
        assert compare(whole, joined, at, tmp_path) > 0.97, at
    assert not any(key.startswith("chunks/") for key in s3_keys(s3))


def test_a_chunk_rendered_early_from_inputs_that_changed_is_rendered_again(generating, calls, s3, settings_env, stub_broker, renders, tmp_path):
    """Segments 1 and 2 arrive in another shape: the panels are the box, not segment 0's square, so chunk 0 is not what was rendered."""
    settings_env(COMPOSE_CHUNK_SECONDS="4")
    early.prerender(generating.id)
    early_row = chunk_row(generating.id, 0)
    assert early_row.state == ChunkState.DONE and s3.exists(early_row.video_key)

    finish(calls, generating, shape="640x360")
    assert compose(generating, s3).status == "completed"
    assert sorted(renders) == [(0, 100), (0, 100), (100, 200), (200, 300)]
    joined = fetch_video(s3, generating.id, tmp_path / "joined.mp4")
    assert frame_count(joined) == 12 * FPS
    assert not s3.exists(early_row.video_key)  # the early chunk's video went when its row was reset
    assert not any(key.startswith("chunks/") for key in s3_keys(s3))


def test_a_later_failure_makes_the_early_chunks_wrong_and_nothing_more_is_rendered_early(generating, s3, settings_env, stub_broker, renders):
    settings = settings_env(COMPOSE_CHUNK_SECONDS="4")
    early.prerender(generating.id)
    done = chunk_row(generating.id, 0)
    Segment.update(state="failed", error="fal said no").where((Segment.call_id == generating.id) & (Segment.index == 2)).execute()
    assert early.ready(Call.get_by_id(generating.id), settings) is None
    # The side is now a local panel in the final render: chunk 0's digest there is not the early one's.
    Call.update(caller_state="failed", stage=Stage.COMPOSITOR).where(Call.id == generating.id).execute()
    from services.compositor.composer import chunk_spec

    workdir = Path(settings.tmp_dir) / "final-spec"
    workdir.mkdir(parents=True)
    spec = chunk_spec(Call.get_by_id(generating.id), settings, s3, workdir)
    assert chunks.chunk_digest(spec, (0, 100), settings) != done.plan
    assert renders == [(0, 100)]


def test_nothing_is_rendered_early_for_a_short_call_another_stage_or_without_chunks(calls, generating, settings_env, stub_broker, renders):
    settings = settings_env(COMPOSE_CHUNK_SECONDS="4")
    short = calls.call(duration=8.0, caller_state="generating", stage=Stage.GENERATION)  # under 2.5 chunks: one pass
    calls.segment(short, "caller", 0, 0.0, 8.0, calls.video("short", "red", duration=8.0))
    assert early.ready(Call.get_by_id(short.id), settings) is None
    Call.update(stage=Stage.COMPOSITOR).where(Call.id == generating.id).execute()
    assert early.ready(Call.get_by_id(generating.id), settings) is None  # the compose has it: its coordinator plans the chunks
    Call.update(stage=Stage.GENERATION).where(Call.id == generating.id).execute()
    assert early.ready(Call.get_by_id(generating.id), settings_env(COMPOSE_CHUNK_SECONDS="0")) is None
    assert early.ready(Call.get_by_id(generating.id), settings_env(COMPOSE_CHUNK_SECONDS="4", COMPOSE_EARLY_CHUNKS="false")) is None
    for call_id in (short.id, generating.id):
        early.prerender(call_id)
    assert renders == [] and ComposeChunk.select().count() == 0
    # Words still being heard where the chunk's captions are: not ready either.
    settings = settings_env(COMPOSE_CHUNK_SECONDS="4")
    SpeechJob.update(state="submitted").where((SpeechJob.call_id == generating.id) & (SpeechJob.index == 0)).execute()
    assert early.ready(Call.get_by_id(generating.id), settings) is None
