"""The pipeline without the fal.ai wait, stage by stage, each stage a fresh worker process.

One :class:`Rig` holds the loopback servers the workers talk to: the fake
Twilio (TLS, Basic auth, the real download protocol), moto's S3 server over
HTTP and a SQLite database; children get them through the environment, as a
deployed worker does. The in-process broker stands in for RabbitMQ: a stage is
its actor called directly, so the messages it sends are dropped.

For each call: ``download`` (Twilio → S3), ``split`` (with FAL_KEY set, so the
audio stage also cuts and stores each side's segments, as in production),
then generation is played by this process (each planned segment gets a
fal-like video of its length, stored where fal's would be) and ``compose``
renders the call from its segments. ``compose (local panels)`` renders the
same call as a deployment without fal.ai would, and ``upload`` stores the
final video once more in a process of its own, to show the transfer's cost
alone (it is already inside ``compose``'s figures).
"""

from __future__ import annotations

import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import media
from bench.measure import StageResult, run_stage

__all__ = ["Rig", "PipelineRun", "run_pipeline", "download_flatness", "STAGE_ORDER"]

STAGE_ORDER = ("download", "split", "compose", "compose (local panels)", "upload")
# A key FAL_KEY is set to, so the audio stage cuts segments; nothing is ever sent to fal.ai.
UNUSED_FAL_KEY = "bench-not-sent-anywhere"


class Rig:
    """Loopback Twilio, S3 and database, and the environment a worker needs to use them."""

    def __init__(self, workdir: Path) -> None:
        from tests.support.fake_twilio import FakeTwilio
        from tests.support.services import S3Server

        self.workdir = workdir
        self.twilio = FakeTwilio(workdir=workdir).start()
        self.s3 = S3Server().start()
        self.bucket = f"bench-{uuid.uuid4().hex[:8]}"
        self.database_url = f"sqlite:///{workdir / 'bench.db'}"
        import boto3

        self.client = boto3.client(
            "s3", endpoint_url=self.s3.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.client.create_bucket(Bucket=self.bucket)

        from shared.db import init_database
        from shared.migrations import run_migrations

        run_migrations(init_database(self.database_url, force=True))

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "CALLREEL_DATA_DIR": str(self.workdir / "data"),
            "TMP_DIR": str(self.workdir / "tmp"),
            "DATABASE_URL": self.database_url,
            "BROKER_URL": "memory://",
            "METRICS_PORT": "0",
            "LOG_LEVEL": "INFO",
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_RECORDING_HOSTS": self.twilio.host,
            "SSL_CERT_FILE": self.twilio.ca_file,
            **self.s3.env(self.bucket),
        }
        env.update(overrides)
        return env

    def copy(self, source: str, target: str) -> None:
        self.client.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source})

    def stop(self) -> None:
        self.twilio.stop()
        self.s3.stop()


def _new_call(rig: Rig, body: bytes, seconds: float) -> str:
    from shared import keys
    from shared.models import Call, Stage, VideoStatus, utcnow

    recording = rig.twilio.add_recording(body)
    call_id = keys.new_call_id()
    Call.create(
        id=call_id,
        recording_sid=recording.sid,
        recording_url=rig.twilio.recording_url(recording),
        account_sid=rig.twilio.account_sid,
        recording_duration=round(seconds),
        recording_channels=2,
        video_status=VideoStatus.PENDING,
        stage=Stage.INGEST,
        source="twilio",
        video_processing_started_at=utcnow(),
    )
    return call_id


def _generate(rig: Rig, call_id: str, long_videos: dict[str, Path], cache: Path) -> None:
    """Play the generation stage: a fal-like video for every planned segment, then hand on."""
    from shared import keys
    from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus

    states = {}
    for side in ("caller", "callee"):
        segments = list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == side)).order_by(Segment.index))
        for segment in segments:
            seconds = round(segment.end - segment.start, 2)
            clip, hit = media.cached_path(cache, f"segment-{side}", {"source": long_videos[side].name, "seconds": seconds}, ".mp4")
            if not hit:
                media.ffmpeg("-i", str(long_videos[side]), "-t", f"{seconds:g}", "-c", "copy", "-movflags", "+faststart", str(clip))
            key = keys.segment_video_key(call_id, side, segment.index)
            rig.client.upload_file(str(clip), rig.bucket, key, ExtraArgs={"ContentType": "video/mp4"})
            Segment.update({Segment.state: SegmentState.COMPLETED, Segment.video_key: key}).where(Segment.id == segment.id).execute()
        states[side] = SideState.GENERATED if segments else SideState.SILENT
    Call.update(
        {Call.caller_state: states["caller"], Call.callee_state: states["callee"], Call.stage: Stage.COMPOSITOR, Call.video_status: VideoStatus.GENERATING}
    ).where(Call.id == call_id).execute()


def _local_twin(rig: Rig, call_id: str) -> str:
    """A copy of a split call whose sides were never generated (no FAL_KEY): local panels."""
    from shared import keys
    from shared.models import Call, SideState, Stage, VideoStatus

    source = Call.get_by_id(call_id)
    twin = keys.new_call_id()
    rig.copy(keys.recording_key(call_id), keys.recording_key(twin))
    for side in ("caller", "callee"):
        rig.copy(keys.side_audio_key(call_id, side), keys.side_audio_key(twin, side))
    Call.create(
        id=twin,
        stage=Stage.COMPOSITOR,
        video_status=VideoStatus.GENERATING,
        source="twilio",
        recording_channels=2,
        audio_duration=source.audio_duration,
        caller_speech=source.caller_speech,
        callee_speech=source.callee_speech,
        caller_state=SideState.LOCAL,
        callee_state=SideState.LOCAL,
    )
    return twin


@dataclass
class PipelineRun:
    minutes: float
    stages: dict[str, StageResult]


def run_pipeline(
    rig: Rig,
    call: media.Conversation,
    long_videos: dict[str, Path],
    cache: Path,
    *,
    local_panels: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> PipelineRun:
    """One call through every stage; each stage's figures."""
    from shared import keys

    body = call.path.read_bytes()
    call_id = _new_call(rig, body, call.seconds)
    results: dict[str, StageResult] = {}
    progress("download")
    results["download"] = run_stage("download", {"call_id": call_id}, rig.env(), rig.workdir)
    progress("split")
    results["split"] = run_stage("split", {"call_id": call_id}, rig.env(FAL_KEY=UNUSED_FAL_KEY), rig.workdir)
    _generate(rig, call_id, long_videos, cache)
    progress("compose")
    results["compose"] = run_stage("compose", {"call_id": call_id}, rig.env(), rig.workdir)
    if local_panels:
        progress("compose (local panels)")
        twin = _local_twin(rig, call_id)
        results["compose (local panels)"] = run_stage("compose", {"call_id": twin}, rig.env(), rig.workdir)

    final = rig.workdir / f"{call_id}.mp4"
    rig.client.download_file(rig.bucket, keys.video_key(call_id), str(final))
    progress("upload")
    results["upload"] = run_stage("upload", {"path": str(final), "key": f"bench/upload-{call_id}.mp4"}, rig.env(), rig.workdir)
    final.unlink()
    shutil.rmtree(rig.workdir / "tmp", ignore_errors=True)
    return PipelineRun(minutes=call.seconds / 60, stages=results)


def download_flatness(rig: Rig, sizes: list[int]) -> dict[int, StageResult]:
    """The download stage for recordings of each size (bytes): its memory should not grow with them."""
    results = {}
    for size in sizes:
        body = media.noise_body(size)
        call_id = _new_call(rig, body, 60)
        results[size] = run_stage("download", {"call_id": call_id}, rig.env(), rig.workdir)
        rig.twilio.recordings.clear()  # let the body go
        del body
    return results
