"""The whole pipeline as deployed, on loopback: real processes, real servers, fakes only at the edges.

::

    test ──signed webhook──▶ gunicorn (services.ingest.app:app)
                                 │ RabbitMQ (a private vhost)
        dramatiq services.ingest.actors      --queues ingest      ──▶ fake Twilio (TLS)
        dramatiq services.audio.actors       --queues audio
        dramatiq services.generation.actors  --queues generation  ──▶ fake fal.ai (TLS)
        dramatiq services.compositor.actors  --queues compositor
                                 │ PostgreSQL (a private database)
                                 └ S3: fault-injecting proxy ──▶ moto's S3 server

Every process gets the environment an operator would set, with short
timings (FAL_POLL_INTERVAL 0.2 s, small panels) so a call of a few seconds
goes through in seconds. The test process reads the database and the bucket
(straight from moto, never through the proxy) to decide when a call has ended.

Used by the pytest fixtures in ``conftest.py`` and by ``load.py`` directly.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import urlencode

import httpx

from tests.support.dramatiq_worker import DramatiqWorker
from tests.support.env import BIN, process_env
from tests.support.fake_fal import Behaviour, FakeFal
from tests.support.fake_twilio import FakeTwilio, Recording
from tests.support.media import color_video, tone_call
from tests.support.processes import stop_group
from tests.support.rabbitmq import RabbitAdmin
from tests.support.s3_proxy import FaultyS3Proxy
from tests.support.services import S3Server, free_port
from tests.support.wait import wait_for

__all__ = ["Pipeline", "SentCall", "WORKERS", "WEBHOOK_PATH", "PUBLIC_BASE_URL", "API_TOKEN", "FAL_KEY", "RETELL_API_KEY", "ELEVENLABS_SECRET", "VAPI_SECRET"]

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_PATH = "/twilio/recording-status"
PUBLIC_BASE_URL = "https://callreel-e2e.example.com"
API_TOKEN = "e2e-api-token-" + "z" * 24
FAL_KEY = "e2e-fal-key"
RETELL_API_KEY = "key_e2e_retell_" + "k" * 20
ELEVENLABS_SECRET = "wsec_e2e_" + "e" * 30
VAPI_SECRET = "vapi_e2e_" + "v" * 30
#: service name → its queue (one Dramatiq process each, consuming only its own queue).
WORKERS = {"ingest": "ingest", "audio": "audio", "generation": "generation", "compositor": "compositor"}
TERMINAL = ("completed", "partial", "failed")


@dataclass
class SentCall:
    """A call the test sent through Twilio's door: its id, its recording at the fake, the form posted."""

    call_id: str
    recording: Recording
    form: dict[str, str]
    body: bytes


class Process:
    """gunicorn: a process (and its own process group) with a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args, self.env, self.log_path = args, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def stop(self) -> None:
        stop_group(self.process, patience=25)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Worker(DramatiqWorker):
    """A service's Dramatiq CLI process; can be killed (SIGKILL to its group: main and worker processes) and restarted."""

    def __init__(self, service: str, env: dict[str, str], log_path: Path, threads: int, processes: int = 1) -> None:
        super().__init__(f"services.{service}.actors", [WORKERS[service]], env, log_path, threads=threads, processes=processes)
        self.service = service

    def kill(self) -> None:
        """What an OOM kill or a lost machine does: no shutdown, no acks, unfinished work left as it is."""
        stop_group(self.process, kill=True)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Pipeline:
    def __init__(
        self,
        root: Path,
        *,
        pg_url: str,
        broker_url: str,
        s3_server: S3Server,
        threads: int = 2,
        **overrides: str,
    ) -> None:
        self.root = root
        self.pg_url = pg_url
        self.broker_url = broker_url
        self.s3_server = s3_server
        self.threads = threads
        self.overrides = {k: str(v) for k, v in overrides.items()}
        self.bucket = f"e2e-{os.urandom(5).hex()}"
        self.rabbit = RabbitAdmin(broker_url)
        self.twilio = FakeTwilio(workdir=root)
        self.fal: FakeFal | None = None
        self.proxy = FaultyS3Proxy(s3_server.url)
        self.workers: dict[str, Worker] = {}
        self.killed: set[str] = set()
        self.web: Process | None = None
        self.port = free_port()
        self.memory = MemorySampler(self)
        self._media = itertools.count(1)
        self._client = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Pipeline":
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.twilio.start()
        self.fal = FakeFal(self.root, color_video(self.root / "fal-result.mp4", "navy", size="64x64", duration=1.0)).start()
        self.fal.default = quick()
        self.proxy.start()
        self.s3.create_bucket(Bucket=self.bucket)
        self._migrate()
        self.web = Process([str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], self.env("web"), self.root / "logs" / "gunicorn.log").start()
        for service in WORKERS:
            self.workers[service] = Worker(service, self.env(service), self.root / "logs" / f"{service}.log", self.threads).start()
        self.wait_ready()
        self.memory.start()
        return self

    def stop(self) -> None:
        self.memory.stop()
        self.proxy.clear()
        # SIGTERM to all first: each takes seconds to drain, in parallel.
        running = [w.process for w in self.workers.values() if w.alive] + ([self.web.process] if self.web else [])
        for process in running:
            if process is not None and process.poll() is None:
                process.terminate()
        for worker in self.workers.values():
            worker.stop()
        if self.web is not None:
            self.web.stop()
        for server in (self.proxy, self.twilio, self.fal):
            if server is not None:
                server.stop()
        # The vhost may be shared with other tests: leave its queues empty.
        for queue in WORKERS.values():
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                try:
                    self.rabbit.purge(name)
                except Exception:
                    pass
        self.rabbit.close()

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self, service: str, **extra: str) -> dict[str, str]:
        """What an operator sets for ``service`` (the same deployment-wide values for every one)."""
        tmp = self.tmp_dir(service)
        tmp.mkdir(parents=True, exist_ok=True)
        return process_env(inherit=False, **{
            "HOME": str(self.root),
            "CALLREEL_DATA_DIR": str(self.root / "data"),
            "TMP_DIR": str(tmp),
            "DATABASE_URL": self.pg_url,
            "BROKER_URL": self.broker_url,
            "METRICS_PORT": "0",
            "LOG_LEVEL": "INFO",
            "S3_BUCKET": self.bucket,
            "S3_ENDPOINT_URL": self.proxy.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            # Both fakes speak TLS with their own throwaway CA: trust both.
            "SSL_CERT_FILE": self._ca_bundle(),
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "TWILIO_RECORDING_HOSTS": self.twilio.host,
            # Submitted recording URLs (POST /calls, the platforms' webhooks) are served by the same TLS fake.
            "RECORDING_URL_HOSTS": self.twilio.host,
            "TWILIO_404_WINDOW": "30",
            "DOWNLOAD_TIMEOUT": "10",
            "CALLREEL_API_TOKEN": API_TOKEN,
            # A voice-agent platform's webhook (#27, test_platforms.py): Retell's, its recordings on the fake's media URLs.
            "RETELL_API_KEY": RETELL_API_KEY,
            "RETELL_RECORDING_HOSTS": self.twilio.host,
            "VAPI_WEBHOOK_SECRET": VAPI_SECRET,
            "VAPI_RECORDING_HOSTS": self.twilio.host,
            "ELEVENLABS_WEBHOOK_SECRET": ELEVENLABS_SECRET,  # its two webhooks, paired; a mono mix split by turns
            "PORT": str(self.port),
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "4",
            "RECORDING_MAX_BYTES": str(4_000_000),
            "RECORDING_MAX_SECONDS": "300",
            "FAL_KEY": FAL_KEY,
            "FAL_QUEUE_RUN_HOST": self.fal.host,
            "FAL_POLL_INTERVAL": "0.2",
            "FAL_JOB_TIMEOUT": "60",
            "FAL_MAX_RETRIES": "1",
            "PANEL_WIDTH": "320",
            "PANEL_HEIGHT": "240",
            "VIDEO_FPS": "15",
            "STAGE_DEADLINE": "60",
            # Lowered from 300 s, still longer than the minute-long S3 outage of test_s3_faults.
            "STORAGE_OUTAGE_TOLERANCE": "90",
            **self.overrides,
            **extra,
        })

    def _ca_bundle(self) -> str:
        path = self.root / "ca-bundle.pem"
        if not path.exists():
            path.write_text(Path(self.twilio.ca_file).read_text() + Path(self.fal.ca_file).read_text())
        return str(path)

    def _migrate(self) -> None:
        env = self.env("migrate")
        done = subprocess.run([str(BIN / "callreel"), "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"callreel migrate failed:\n{done.stdout}\n{done.stderr}"

    def wait_ready(self, timeout: float = 90) -> None:
        """gunicorn answers /healthz and every worker consumes its queue."""
        problems: list[str] = []

        def ready() -> bool:
            problems[:] = self._not_ready()
            return not problems

        wait_for(ready, timeout=timeout, interval=0.2, what="the pipeline to come up", describe=lambda: f"{problems}\n{self.logs()}")

    def _not_ready(self) -> list[str]:
        problems = []
        for name, worker in self.workers.items():
            if not worker.alive:
                raise AssertionError(f"the {name} worker exited with {worker.process.returncode}\n{worker.log()[-4000:]}")
            if self.rabbit.queue(WORKERS[name]).consumers < worker.processes:
                problems.append(f"{name}: not every process consumes yet")
        if self.web.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.web.process.returncode}\n{self.web.log()[-4000:]}")
        try:
            if httpx.get(f"{self.base_url}/healthz", timeout=3).status_code != 200:
                problems.append("gunicorn: not healthy")
        except httpx.TransportError:
            problems.append("gunicorn: not answering")
        return problems

    # -- processes ------------------------------------------------------------------------------

    def kill(self, service: str) -> None:
        self.killed.add(service)
        self.workers[service].kill()

    def stop_worker(self, service: str) -> None:
        """Stop ``service`` cleanly (SIGTERM), as an operator scaling it to zero would."""
        self.killed.add(service)
        self.workers[service].stop()

    def crashed(self) -> list[str]:
        """Workers that died without the test killing them (a worker must survive any input)."""
        return [s for s, w in self.workers.items() if not w.alive and s not in self.killed]

    def restart(self, service: str, *, processes: int = 1, **env: str) -> None:
        """Start ``service`` again (after a kill, or to change its settings or its number of worker
        processes: each is a consumer with its own connections, as a second replica is), and wait until it consumes."""
        worker = self.workers[service]
        worker.stop()
        self.workers[service] = Worker(service, self.env(service, **env), worker.log_path, self.threads, processes).start()
        self.wait_ready()

    def reset(self) -> None:
        """Between tests: no faults left, every process up with the deployment's settings."""
        self.proxy.clear()
        if self.fal is not None:
            self.fal.default = quick()
        for service, worker in list(self.workers.items()):
            if not worker.alive or worker.env != self.env(service) or worker.processes != 1:
                self.restart(service)
        self.killed.clear()

    def tmp_dir(self, service: str) -> Path:
        return self.root / "tmp" / service

    def temp_leftovers(self, services: Iterable[str] = tuple(WORKERS)) -> list[Path]:
        """Whatever is left in the workers' TMP_DIRs (per-call folders are removed in every outcome)."""
        return sorted(p for s in services if self.tmp_dir(s).exists() for p in self.tmp_dir(s).iterdir())

    def logs(self, tail: int = 3000) -> str:
        parts = [f"--- {p.name} ---\n{p.read_text(errors='replace')[-tail:]}" for p in sorted((self.root / "logs").glob("*.log"))]
        return "\n".join(parts)

    # -- S3, straight from moto -----------------------------------------------------------------

    @property
    def s3(self):
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3", endpoint_url=self.s3_server.url, region_name="us-east-1",
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )
        return self._client

    def object_bytes(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception:
            return False
        return True

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def unfinished_uploads(self) -> list[str]:
        return [u["Key"] for u in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    # -- calls ----------------------------------------------------------------------------------

    def recording(self, seconds: float = 4.0, *, caller_hz: int | None = None, callee_hz: int | None = None) -> bytes:
        """A distinct stereo call: the caller speaks (a tone) in the first part, the callee in the second.

        Each call gets tones of its own, so no two calls have the same segment
        audio (which generation would rightly serve from its cache instead of fal).
        """
        n = next(self._media)
        path = self.root / "media" / f"call-{n}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Tones on a 10 Hz grid (what tests.support.media.dominant_hz measures); past 90 calls the
        # speech starts a little later instead, so every side's audio stays unique.
        lap, step = divmod(n, 90)
        caller = ((round(0.4 + 0.05 * lap, 2), round(seconds * 0.45, 2)),)
        callee = ((round(seconds * 0.55 + 0.05 * lap, 2), seconds - 0.4),)
        tone_call(
            path, seconds, caller, callee,
            caller_hz=caller_hz or 200 + 10 * step, callee_hz=callee_hz or 1100 + 10 * step,
        )
        return path.read_bytes()

    def send_call(self, body: bytes | None = None, *, script: Iterable[str] = ("ok",), post: bool = True, **fields: str) -> SentCall:
        """Publish a recording at the fake Twilio and post its signed completed-recording webhook."""
        body = self.recording() if body is None else body
        recording = self.twilio.add_recording(body, script=list(script))
        fields.setdefault("RecordingDuration", "4")
        form = self.twilio.callback(recording, **fields)
        sent = SentCall(form["CallSid"], recording, form, body)
        if post:
            response = self.post_webhook(form)
            assert response.status_code == 202, f"webhook answered {response.status_code}: {response.text}"
        return sent

    def post_webhook(self, form: dict[str, str], *, signature: str | None = None, body: str | bytes | None = None,
                     content_type: str = "application/x-www-form-urlencoded", path: str = WEBHOOK_PATH) -> httpx.Response:
        """POST a recording status callback as Twilio does: signed with the real RequestValidator unless told otherwise."""
        headers = {"Content-Type": content_type}
        if signature != "":
            headers["X-Twilio-Signature"] = signature or self.twilio.sign(PUBLIC_BASE_URL + path, form)
        return httpx.post(f"{self.base_url}{path}", content=urlencode(form) if body is None else body, headers=headers, timeout=20)

    def status(self, call_id: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}/calls/{call_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)

    def wait_ended(self, call_ids: Iterable[str], *, timeout: float = 240) -> dict[str, "object"]:
        """Wait until every call is terminal in the database (and, unless failed, its video is in S3)."""
        from shared.models import Call

        call_ids = list(call_ids)
        if not call_ids:
            return {}
        rows: dict[str, Call] = {}

        def ended(call_id: str) -> bool:
            row = rows.get(call_id)
            return row is not None and row.video_status in TERMINAL

        def all_ended() -> dict[str, Call] | None:
            rows.clear()
            rows.update((c.id, c) for c in Call.select().where(Call.id.in_(call_ids)))
            done = all(ended(i) and (rows[i].video_status == "failed" or self.exists(f"videos/{i}.mp4")) for i in call_ids)
            return dict(rows) if done else None

        def waiting() -> str:
            left = [i for i in call_ids if not ended(i)]
            return f"{len(left)} of {len(call_ids)} call(s) not ended\n" + "\n".join(self.describe(i) for i in left[:3]) + f"\n{self.logs()}"

        return wait_for(all_ended, timeout=timeout, interval=0.25, what="the calls to end", describe=waiting)

    def wait_ended_one(self, call_id: str, **kw):
        return self.wait_ended([call_id], **kw)[call_id]

    def describe(self, call_id: str) -> str:
        from shared.models import Call, Segment

        call = Call.get_or_none(Call.id == call_id)
        if call is None:
            return f"call {call_id}: no row"
        lines = [
            f"call {call_id}: {call.video_status} stage={call.stage} caller={call.caller_state} callee={call.callee_state} "
            f"attempts=i{call.ingest_attempts}/a{call.audio_attempts}/g{call.generation_attempts}/c{call.compositor_attempts} "
            f"error={call.video_error_message!r}"
        ]
        for s in Segment.select().where(Segment.call_id == call_id).order_by(Segment.side, Segment.index):
            lines.append(f"  {s.side}[{s.index}] {s.state} attempts={s.attempts} job={s.fal_request_id} {s.progress!r} {s.error!r}")
        return "\n".join(lines)

    # -- fal ------------------------------------------------------------------------------------

    def fal_submissions(self, call_id: str, side: str | None = None) -> list[dict]:
        """Every submission fal received for this call (accepted or not)."""
        tag = f"{call_id}-{side}-" if side else call_id
        return [s for s in self.fal.submissions if tag in str(s["input"].get("audio_url", ""))]


def quick() -> Behaviour:
    """A fal job that ends at its first status poll."""
    return Behaviour(queued_polls=0, running_polls=0)


# -- memory -------------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


def _kib(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


@dataclass
class Peak:
    kib: int = 0
    pids: set[int] = field(default_factory=set)


class MemorySampler:
    """Peak memory (VmHWM, the kernel's high-water mark of resident memory) of each worker and its children.

    The Dramatiq command is a main process with worker processes under it, and
    those start FFmpeg children: the whole tree is walked every ``interval`` s,
    and each process's VmHWM kept per service and per role (``main``: the
    supervisor, ``worker``: the Python processes running actors, ``ffmpeg``…).
    A child that lives less than one interval can be missed; a long one is
    caught near its peak (VmHWM only grows).
    """

    def __init__(self, pipeline: Pipeline, interval: float = 0.1) -> None:
        self.pipeline = pipeline
        self.interval = interval
        self.peaks: dict[tuple[str, str], Peak] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        self.peaks.clear()

    def _roots(self) -> dict[str, int]:
        roots = {s: w.process.pid for s, w in self.pipeline.workers.items() if w.alive}
        if self.pipeline.web is not None and self.pipeline.web.process and self.pipeline.web.process.poll() is None:
            roots["ingest-web"] = self.pipeline.web.process.pid
        return roots

    def sample(self) -> None:
        tree = _children()
        for service, root in self._roots().items():
            todo = [(root, "main")]
            while todo:
                pid, role = todo.pop()
                status = _status(pid)
                if not status:
                    continue
                name = status.get("Name", "").strip()
                if role != "main":
                    role = "worker" if name.startswith(("python", "dramatiq", "gunicorn")) else name
                peak = self.peaks.setdefault((service, role), Peak())
                peak.kib = max(peak.kib, _kib(status.get("VmHWM")))
                peak.pids.add(pid)
                todo.extend((child, "child") for child in tree.get(pid, []))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a process that vanished mid-read
                pass

    def report(self) -> list[tuple[str, str, float, int]]:
        """(service, role, peak MiB, processes seen), sorted."""
        return sorted((s, r, round(p.kib / 1024, 1), len(p.pids)) for (s, r), p in self.peaks.items())
