"""The generation service against real servers: PostgreSQL, RabbitMQ, moto's S3 over HTTP and a fake fal.ai over TLS.

The service runs as its own Dramatiq worker process (as deployed), because
fal-client reads FAL_QUEUE_RUN_HOST when it is imported: the worker's
environment points it at the fake and trusts the fake's certificate through
SSL_CERT_FILE, and fal-client runs unpatched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared import keys
from shared.contracts import GENERATE_SIDE
from shared.keys import new_call_id
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus
from shared.speech_jobs import SpeechJob
from tests.support.calls import make_call
from tests.support.dramatiq_worker import DramatiqWorker
from tests.support.fake_fal import Behaviour, FakeFal
from tests.support.media import color_video
from tests.support.objects import put
from tests.support.wait import wait_for

FAL_KEY = "test-key-0123"


@pytest.fixture(scope="session")
def fal_video(tmp_path_factory) -> Path:
    """A real small MP4, what the fake serves as every finished job's video."""
    return color_video(tmp_path_factory.mktemp("fal") / "result.mp4", "navy", size="64x64", duration=1.0)


@pytest.fixture(scope="session")
def fake_fal_server(tmp_path_factory, fal_video):
    server = FakeFal(tmp_path_factory.mktemp("fal-tls"), fal_video).start()
    yield server
    server.stop()


@pytest.fixture
def fake_fal(fake_fal_server):
    fake_fal_server.reset()
    yield fake_fal_server
    fake_fal_server.reset()


@dataclass
class Generation:
    """One test's view of the service: rows and objects in, a worker to run, what came out."""

    fake: FakeFal
    storage: object
    broker: object
    env: dict[str, str]
    tmp: Path
    workers: list[DramatiqWorker] = field(default_factory=list)
    audio: dict[str, bytes] = field(default_factory=dict)  # segment audio key -> bytes

    def worker(self, **settings: str) -> DramatiqWorker:
        env = {**self.env, **{k: str(v) for k, v in settings.items()}}
        worker = DramatiqWorker("services.generation.actors", ["generation"], env, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker.start()

    def log(self) -> str:
        return "\n".join(w.log()[-6000:] for w in self.workers)

    def add_call(
        self,
        caller: list[tuple[float, float]] | None,
        callee: list[tuple[float, float]] | None,
        *,
        call_id: str | None = None,
        audio: dict[tuple[str, int], bytes] | None = None,
    ) -> str:
        """A call as the audio stage leaves it: per side, its Segment rows and their audio objects (None: silent)."""
        call_id = call_id or new_call_id()
        states = {side: SideState.SILENT if plan is None else SideState.PENDING for side, plan in (("caller", caller), ("callee", callee))}
        duration = max((end for plan in (caller, callee) for _, end in plan or ()), default=720.0)  # where the segments end
        make_call(
            call_id, stage=Stage.AUDIO, video_status=VideoStatus.PENDING, audio_duration=duration,
            caller_state=states["caller"], callee_state=states["callee"],
        )
        for side, plan in (("caller", caller), ("callee", callee)):
            for index, (start, end) in enumerate(plan or ()):
                key = keys.segment_audio_key(call_id, side, index)
                data = (audio or {}).get((side, index)) or (b"ID3fake-mp3 " + f"{call_id} {side} {index} ".encode() * 200)
                self.upload(key, data)
                Segment.create(call_id=call_id, side=side, index=index, start=start, end=end, state=SegmentState.PENDING, audio_key=key)
        return call_id

    def polls_lost(self, running_polls: int) -> tuple[str, object]:
        """A call whose callee's one job runs at fal while its poll messages are gone (a purged queue): its id and fal's job."""
        call_id = self.add_call(caller=None, callee=[(0.0, 30.0)])
        self.fake.script(f"{call_id}-callee-000", [Behaviour(queued_polls=0, running_polls=running_polls)])
        first = self.worker()
        self.generate(call_id)
        callee = (Segment.call_id == call_id) & (Segment.side == "callee")
        wait_for(lambda: Segment.get(callee).fal_request_id is not None, timeout=30, what="the callee's fal job",
                 describe=lambda: self.describe(call_id))
        first.stop()
        self.broker.flush_all()  # the delayed polls are gone
        [job] = self.fake.accepted()
        return call_id, job

    def upload(self, key: str, data: bytes) -> None:
        put(self.storage, key, data)
        self.audio[key] = data

    def generate(self, call_id: str) -> None:
        for side in ("caller", "callee"):
            self.broker.enqueue(GENERATE_SIDE.message(call_id=call_id, side=side))

    def composed(self, call_id: str, timeout: float = 90.0) -> Call:
        """Wait until the fan-in has handed the call to the compositor: the compose sent and the stage moved on."""

        def handed() -> bool:
            call = Call.get_by_id(call_id)
            return call.compose_enqueued_at is not None and call.stage == Stage.COMPOSITOR

        wait_for(
            handed,
            timeout=timeout,
            what=f"call {call_id} handed to the compositor",
            describe=lambda: f"{self.describe(call_id)}\n--- worker log ---\n{self.log()}",
        )
        return Call.get_by_id(call_id)

    def describe(self, call_id: str) -> str:
        call = Call.get_by_id(call_id)
        rows = [f"call {call_id}: {call.video_status} stage={call.stage} caller={call.caller_state} callee={call.callee_state}"]
        for s in Segment.select().where(Segment.call_id == call_id).order_by(Segment.side, Segment.index):
            rows.append(f"  {s.side}[{s.index}] {s.state} attempts={s.attempts} job={s.fal_request_id} {s.progress!r} {s.error!r}")
        rows.append(f"  transcript {call.transcript_status} {call.transcript_error!r}")
        for j in SpeechJob.select().where(SpeechJob.call_id == call_id).order_by(SpeechJob.side, SpeechJob.index):
            rows.append(f"  stt {j.side}[{j.index}] {j.state} attempts={j.attempts} job={j.fal_request_id} {j.progress!r} {j.error!r}")
        return "\n".join(rows)

    def compose_messages(self) -> int:
        return self.broker.get_queue_message_counts("compositor")[0]

    def object_bytes(self, key: str) -> bytes:
        path = self.tmp / "download.bin"
        self.storage.download_file(key, path)
        return path.read_bytes()

    @staticmethod
    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()


@pytest.fixture
def generation(pg_db, pg_url, s3, s3_server, rabbitmq_url, fake_fal, tmp_path):
    from shared.broker import build_broker
    from shared.settings import load_settings

    broker = build_broker(load_settings({"BROKER_URL": rabbitmq_url}))
    broker.flush_all()
    (tmp_path / "worker-tmp").mkdir()
    env = {
        **s3_server.env(s3.bucket),
        "DATABASE_URL": pg_url,
        "BROKER_URL": rabbitmq_url,
        "FAL_KEY": FAL_KEY,
        "FAL_QUEUE_RUN_HOST": fake_fal.host,
        "SSL_CERT_FILE": fake_fal.ca_file,
        "FAL_POLL_INTERVAL": "0.2",
        "FAL_JOB_TIMEOUT": "30",
        "FAL_MAX_RETRIES": "2",
        "CALLREEL_DATA_DIR": str(tmp_path / "worker-data"),
        "TMP_DIR": str(tmp_path / "worker-tmp"),
        "LOG_LEVEL": "INFO",
        # compose_messages counts the compositor queue: no early-chunk offers on it (test_fanin.py tests those).
        "COMPOSE_EARLY_CHUNKS": "false",
    }
    creds = s3_server.env(s3.bucket)
    fake_fal.s3_credentials = {"access_key": creds["AWS_ACCESS_KEY_ID"], "secret_key": creds["AWS_SECRET_ACCESS_KEY"], "region": creds["AWS_REGION"]}
    harness = Generation(fake_fal, s3, broker, env, tmp_path)
    yield harness
    for worker in harness.workers:
        worker.stop()
    broker.flush_all()
    broker.close()

