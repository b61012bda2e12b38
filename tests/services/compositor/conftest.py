"""Fixtures for the compositor: calls at the compositor stage with their media in S3, and its worker."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from tests.support.calls import make_call
from tests.support.media import color_video, ffmpeg, tone_call

Interval = tuple[float, float]


class CallFactory:
    """Makes the rows and objects the earlier stages would have left for a call."""

    def __init__(self, storage, workdir: Path) -> None:
        self.storage = storage
        self.workdir = workdir
        workdir.mkdir(exist_ok=True)

    def call(
        self,
        *,
        duration: float = 4.0,
        caller_speech: Sequence[Interval] = ((0.5, 2.0),),
        callee_speech: Sequence[Interval] = ((2.5, 3.5),),
        caller_state: str = "local",
        callee_state: str = "local",
        side_audio: bool = True,
        store_speech: bool = True,
        **columns,
    ):
        from shared import keys
        from shared.models import Stage, VideoStatus

        call_id = keys.new_call_id()
        recording = tone_call(self.workdir / f"{call_id}.mp3", duration, caller_speech, callee_speech)
        self.storage.upload_file(recording, keys.recording_key(call_id), content_type="audio/mpeg")
        if side_audio:
            for side, channel in (("caller", 0), ("callee", 1)):
                mono = self.workdir / f"{call_id}-{side}.mp3"
                ffmpeg("-i", str(recording), "-af", f"pan=mono|c0=c{channel}", "-c:a", "libmp3lame", "-b:a", "32k", str(mono))
                self.storage.upload_file(mono, keys.side_audio_key(call_id, side), content_type="audio/mpeg")
        values = dict(
            id=call_id,
            video_status=VideoStatus.GENERATING,
            stage=Stage.COMPOSITOR,
            source="twilio",
            recording_channels=2,
            audio_duration=duration,
            caller_state=caller_state,
            callee_state=callee_state,
            caller_speech=[list(i) for i in caller_speech] if store_speech else None,
            callee_speech=[list(i) for i in callee_speech] if store_speech else None,
        )
        return make_call(**{**values, **columns})

    def segment(
        self, call, side: str, index: int, start: float, end: float, video: Path | bytes | None, *, state: str = "completed", pieces=None
    ):
        """A generated segment of ``side``: its video (a file, or raw bytes for a corrupt one) stored under its key; ``pieces``: packed."""
        from shared import keys
        from shared.models import Segment

        key = None
        if video is not None:
            key = keys.segment_video_key(call.id, side, index)
            if isinstance(video, bytes):
                path = self.workdir / f"{call.id}-{side}-{index}.bin"
                path.write_bytes(video)
                video = path
            self.storage.upload_file(video, key, content_type="video/mp4")
        return Segment.create(call_id=call.id, side=side, index=index, start=start, end=end, state=state, video_key=key, pieces=pieces)

    def video(self, name: str, colour: str, **kwargs) -> Path:
        path = self.workdir / f"{name}.mp4"
        return path if path.exists() else color_video(path, colour, **kwargs)


@pytest.fixture
def calls(pg_db, s3, tmp_path) -> CallFactory:
    return CallFactory(s3, tmp_path / "media")


@pytest.fixture
def compositor_actors(stub_broker):
    from services.compositor import actors

    return actors


@pytest.fixture
def compositor_worker(stub_broker, compositor_actors):
    """A worker on the ``compositor`` queue only."""
    import dramatiq

    worker = dramatiq.Worker(stub_broker, queues={"compositor"}, worker_timeout=100, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def run_compose(stub_broker, compositor_worker):
    """Send COMPOSE for a call and wait until the worker is done with it."""
    from shared.contracts import COMPOSE, send

    def run(call_id: str, **kwargs) -> None:
        send(COMPOSE, call_id=call_id, **kwargs)
        stub_broker.join("compositor", fail_fast=False)
        compositor_worker.join()

    return run


@pytest.fixture
def tmp_dir(tmp_path) -> Path:
    """The TMP_DIR every test runs with (see tests/conftest.py): compose's temp folders go here."""
    return tmp_path / "tmp"
