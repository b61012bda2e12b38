"""Fixtures for the audio service: its actor on the in-process broker, and calls whose recording is in S3."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from dramatiq import Message

from tests.support import calls

CALL_ID = "CA" + "a1" * 16


@pytest.fixture
def audio_actors(stub_broker):
    """The service's actors module, declared on the in-process broker."""
    from services.audio import actors

    return actors


@pytest.fixture
def audio_worker(stub_broker, audio_actors):
    """A worker on the ``audio`` queue only.

    Messages the actor hands on stay on their queues for the test to count;
    no other stage's actor (imported by other test modules in this process)
    takes them.
    """
    import dramatiq

    worker = dramatiq.Worker(stub_broker, queues={"audio"}, worker_timeout=100, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def make_call(s3):
    """Create a call at the audio stage with ``recording`` stored as its recording."""
    from shared import keys
    from shared.models import Stage, VideoStatus, utcnow

    def create(recording: Path | None, call_id: str = CALL_ID, **columns) -> str:
        if recording is not None:
            s3.upload_file(recording, keys.recording_key(call_id), content_type="audio/mpeg")
        values = dict(
            id=call_id, video_status=VideoStatus.PENDING, stage=Stage.AUDIO, source="twilio",
            recording_channels=2, ingest_finished_at=utcnow(),
        )
        calls.make_call(**{**values, **columns})
        return call_id

    return create


@pytest.fixture
def split(stub_broker, audio_worker):
    """Send SPLIT_CHANNELS for a call and wait until the audio queue is done with it."""
    from shared.contracts import SPLIT_CHANNELS

    def run(call_id: str = CALL_ID, **options) -> None:
        message = SPLIT_CHANNELS.message(call_id=call_id)
        if options:
            message = message.copy(options=options)
        stub_broker.enqueue(message)
        stub_broker.join("audio", fail_fast=False)
        audio_worker.join()

    return run


def queued(broker, queue: str) -> list[tuple[str, dict]]:
    """The messages waiting on ``queue`` (left there)."""
    return [(m.actor_name, m.kwargs) for m in (Message.decode(raw) for raw in list(broker.queues[queue].queue))]


def tmp_entries(settings) -> list[str]:
    return sorted(os.listdir(settings.tmp_dir)) if settings.tmp_dir.exists() else []


@pytest.fixture
def slow_ffmpeg(tmp_path):
    """An FFMPEG_BINARY that runs the real FFmpeg as its child at real-time speed (``-re``).

    It is a shell with FFmpeg under it, so only killing the whole process
    group stops both. Returns the wrapper's path and where the pids land.
    """
    pids = tmp_path / "pids"
    pids.mkdir()
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo $$ > {pids}/wrapper
        ffmpeg -re "$@" &
        echo $! > {pids}/ffmpeg
        wait
        """))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper, pids
