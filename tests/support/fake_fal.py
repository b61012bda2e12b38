"""A loopback HTTPS server that speaks fal.ai's queue protocol, so fal-client runs unpatched against it.

The protocol, as fal-client 1.0.3 and fal's queue docs have it:

- ``POST /{owner}/{alias}[/{path}]`` with the input JSON and ``Authorization: Key …``
  → ``{request_id, response_url, status_url, cancel_url, queue_position}``; the
  three URLs are ``https://{host}/{owner}/{alias}/requests/{id}[/status|/cancel]``
  (without the model's sub-path, as fal builds them).
- ``GET …/requests/{id}/status?logs=true|false`` → ``{"status": "IN_QUEUE",
  "queue_position": n}``, ``{"status": "IN_PROGRESS", "logs": [...]}`` or
  ``{"status": "COMPLETED", "logs": [...], "metrics": {...}}`` with ``error`` and
  ``error_type`` when the job failed.
- ``GET …/requests/{id}`` → the result (``{"video": {"url": …}}``), or the job's
  error with its status code.
- ``PUT …/requests/{id}/cancel`` → 202 ``{"status": "CANCELLATION_REQUESTED"}``,
  400 ``{"status": "ALREADY_COMPLETED"}``.

fal-client only speaks https, so the server uses TLS with a throwaway CA made by
``trustme``; a client process trusts it through ``SSL_CERT_FILE=fake.ca_file``
and finds it through ``FAL_QUEUE_RUN_HOST=fake.host``.

Each job follows a :class:`Behaviour`, picked per submission by the scripts a
test registers (``fake.script("caller-000", [Behaviour(outcome="error"), …])``,
matched against the submitted audio URL). Jobs advance one step per status poll,
and fetch their image and audio URLs when they start, as fal's runners do; given
``fake.s3_credentials``, the fake checks each presigned URL's signature and
expiry first, as S3 would (the tests' moto server checks neither).

Real fal misbehaves in ways a test can ask for: a job whose status is a clean
``COMPLETED`` while its result fetch fails (``outcome="result_error"``),
5xx answers and connections dropped without an answer (``status_5xx``,
``status_drops``), and a cancellation that takes effect only after
``fake.cancel_delay`` seconds (the job keeps running meanwhile). What each job
cost is recorded: :meth:`FakeFal.wasted` lists the jobs that ran to the end and
made a video nobody downloaded, which is money paid for nothing.

**The simulator.** ``fake.simulate(Simulation(...))`` (or ``simulate(sim,
endpoint=...)`` for one model) switches video jobs from "one step per poll" to
fal's clock: a job waits ``queue_seconds`` in fal's queue, then for a runner
while its key already runs ``concurrency`` jobs (it stays ``IN_QUEUE`` with
its ``queue_position``, as fal's docs say: concurrency never rejects), then
runs ``speed`` seconds of compute per second of video (the audio's length,
probed with ffprobe when the job is submitted; ``num_frames`` for a model that
takes it). ``failure_rate`` of the jobs fail partway (a runner error; fal does
not bill 5xx failures). Submits of one key beyond ``burst`` at once, refilled
at ``submits_per_second``, are answered 429, as a rate limit answers
(fal-client retries a 429 itself with backoff before it raises). Every job
that makes a video is billed ``max(seconds, min_seconds) × price`` at the
model's list price in ``shared.fal_models`` (``price`` overrides it);
:meth:`FakeFal.bill` sums it up. ``time_scale`` > 1 runs fal's clock that
many times faster than the wall clock (queue, compute), so a 30-minute call's
generation takes minutes; the seconds billed stay the video's own. A scaled
run measures the pipeline around fal at real speed and fal's part scaled: the
benchmark says so next to its figures. ``python -m tests.support.fake_fal``
serves the same program as a process of its own (see :func:`main`).

The speech-to-text endpoints (``fal-ai/wizper``, ``fal-ai/whisper``) speak the
same protocol; their jobs are kept apart (``speech_jobs``, ``speech_submissions``,
``speech_cancels``, scripted with ``script_speech``), so a test about video jobs
counts video jobs. A finished one answers ``{"text", "chunks": [{"timestamp":
[start, end], "text"}, …]}`` made from the audio it fetched: one chunk per
stretch of sound FFmpeg's silencedetect finds, with times from the start of that
audio and the text ``"{name} part {n}"`` (``name``: the audio object's file name
without its extension). Audio FFmpeg cannot decode fails the job, as a real
model's would.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support import sigv4

__all__ = ["Behaviour", "FakeFal", "Job", "SPEECH_ENDPOINTS", "Simulation"]

SPEECH_ENDPOINTS = ("fal-ai/wizper", "fal-ai/whisper")


@dataclass
class Behaviour:
    """How one submitted job goes."""

    queued_polls: int = 1  # status polls answered IN_QUEUE (position counting down)
    running_polls: int = 1  # then IN_PROGRESS, with a log line each
    outcome: str = "ok"  # ok | error (job fails) | invalid (fails with 422) | never (stays in progress) | bad_video
    #                      | result_error (status COMPLETED without an error, then the result fetch answers 500)
    reject: int | None = None  # answer the submit itself with this status (422…): no job is made
    submit_429: int = 0  # 429s before the submit is accepted
    status_429: int = 0  # 429s on this job's first status polls
    status_5xx: int = 0  # then 503s on the next status polls
    status_drops: int = 0  # then status polls whose connection is closed without an answer


@dataclass
class Simulation:
    """How fal behaves on its own clock, per model (see the module's text)."""

    queue_seconds: float = 1.0  # in fal's queue before a runner may take the job
    speed: float = 2.0  # seconds of compute per second of video
    concurrency: int = 10  # jobs one key runs at once; more stay IN_QUEUE
    burst: int = 20  # submits one key may make at once before 429s
    submits_per_second: float = 5.0  # how fast the burst refills
    failure_rate: float = 0.0  # jobs that fail partway (runner error, not billed)
    price: float | None = None  # dollars per generated second; None: shared.fal_models' list price
    min_seconds: float | None = None  # None: the model's
    time_scale: float = 1.0  # simulated seconds per wall-clock second
    seed: int = 26


@dataclass
class Job:
    request_id: str
    endpoint: str
    input: dict[str, Any]
    behaviour: Behaviour
    submitted_at: float
    polls: int = 0
    status_429_left: int = 0
    cancelled: bool = False
    cancel_at: float | None = None  # a cancellation requested, effective from then
    finished_at: float | None = None
    video_downloaded: bool = False
    audio_sha: str | None = None
    image_fetched: bool = False
    fetch_error: str | None = None
    url_params: dict[str, dict[str, str]] = field(default_factory=dict)  # a presigned input's X-Amz-* parameters
    logs: list[dict[str, Any]] = field(default_factory=list)
    speech: list[list[float]] | None = None  # a speech-to-text job: the sound it heard, [[start, end], …]
    # The simulator's clock (monotonic seconds; None: not yet).
    key: str = ""
    sim: Simulation | None = None
    video_seconds: float | None = None  # probed from the audio when submitted
    ready_at: float | None = None  # may leave fal's queue from then
    started_at: float | None = None
    ends_at: float | None = None
    fails: bool = False

    @property
    def is_speech(self) -> bool:
        return self.endpoint in SPEECH_ENDPOINTS

    @property
    def made_video(self) -> bool:
        """It ran to the end and made a video (what fal bills in full)."""
        return self.finished_at is not None and not self.failed and self.behaviour.outcome != "result_error"

    @property
    def state(self) -> str:
        if self.cancelled or self.finished_at is not None:
            return "COMPLETED"
        if self.sim is not None:
            return "IN_QUEUE" if self.started_at is None else "IN_PROGRESS"
        if self.polls <= self.behaviour.queued_polls:
            return "IN_QUEUE"
        return "IN_PROGRESS"

    @property
    def failed(self) -> bool:
        return self.cancelled or self.fails or self.fetch_error is not None or self.behaviour.outcome in ("error", "invalid")


class FakeFal:
    def __init__(self, workdir: Path, video: Path, *, video_maker: Any = None, port: int = 0) -> None:
        """``video``: every job's result; ``video_maker(seconds) -> bytes``: a timed job's, as long as its audio."""
        import trustme

        self.video = video.read_bytes()
        self.video_maker = video_maker
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(workdir / "fake-fal-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.fake = self  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-fal", daemon=True)
        self.reset()

    # -- lifecycle and scripting ----------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeFal":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.jobs: dict[str, Job] = {}
            self.submissions: list[dict[str, Any]] = []  # every POST, accepted or not
            self.cancels: list[str] = []
            self.scripts: list[tuple[str, list[Behaviour]]] = []
            self.default = Behaviour()
            self.cancel_delay = 0.0  # seconds before a cancellation takes effect
            self.s3_credentials: dict[str, str] | None = None  # access_key, secret_key, region: check presigned URLs
            self.status_5xx_left: dict[str, int] = {}
            self.status_drops_left: dict[str, int] = {}
            # The speech-to-text endpoints' own books.
            self.speech_jobs: dict[str, Job] = {}
            self.speech_submissions: list[dict[str, Any]] = []
            self.speech_cancels: list[str] = []
            self.speech_scripts: list[tuple[str, list[Behaviour]]] = []
            self.speech_default = Behaviour(queued_polls=0, running_polls=1)
            self.submit_429_left: dict[tuple[bool, str], int] = {}
            self._pending: dict[tuple[bool, str], Behaviour] = {}
            # The simulator: per endpoint ("*": every video model), its rate-limit buckets and its books.
            self.simulations: dict[str, Simulation] = {}
            self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
            self.rate_limited = 0  # submits answered 429 by the simulator
            self.billed: list[dict[str, Any]] = []  # one record per job that made a video
            self.max_running = 0  # the most jobs of one key seen running at once
            self._rng = random.Random(26)

    def simulate(self, simulation: Simulation, endpoint: str = "*") -> None:
        """Video jobs (of ``endpoint``, or every model) follow fal's clock from now on."""
        with self.lock:
            self.simulations[endpoint] = simulation
            self._rng = random.Random(simulation.seed)

    def _simulation(self, endpoint: str) -> Simulation | None:
        return self.simulations.get(endpoint) or self.simulations.get("*")

    def bill(self) -> dict[str, Any]:
        """What the simulator billed: seconds and dollars per model and in all, jobs, 429s, the peak concurrency."""
        with self.lock:
            self._tick(time.monotonic())
            per_model: dict[str, dict[str, float]] = {}
            for record in self.billed:
                entry = per_model.setdefault(record["endpoint"], {"jobs": 0, "seconds": 0.0, "dollars": 0.0})
                entry["jobs"] += 1
                entry["seconds"] += record["seconds"]
                entry["dollars"] += record["dollars"]
            return {
                "jobs": len(self.billed),
                "seconds": round(sum(r["seconds"] for r in self.billed), 3),
                "dollars": round(sum(r["dollars"] for r in self.billed), 4),
                "per_model": per_model,
                "rate_limited": self.rate_limited,
                "submitted": sum(1 for s in self.submissions if s["status"] == 200),
                "max_running": self.max_running,
                "records": list(self.billed),
            }

    def script(self, match: str, behaviours: list[Behaviour]) -> None:
        """Video jobs whose audio URL contains ``match`` follow ``behaviours`` in order, then the default."""
        with self.lock:
            self.scripts.append((match, list(behaviours)))

    def script_speech(self, match: str, behaviours: list[Behaviour]) -> None:
        """The same for speech-to-text jobs (then ``speech_default``)."""
        with self.lock:
            self.speech_scripts.append((match, list(behaviours)))

    def _behaviour_for(self, arguments: dict[str, Any], speech: bool) -> Behaviour:
        audio_url = str(arguments.get("audio_url", ""))
        for match, behaviours in self.speech_scripts if speech else self.scripts:
            if match in audio_url and behaviours:
                return behaviours.pop(0)
        return self.speech_default if speech else self.default

    def accepted(self) -> list[Job]:
        """The video jobs, in the order they were submitted (a cancellation whose delay has passed has taken effect)."""
        with self.lock:
            for job in self.jobs.values():
                self._settle_cancel(job)
            return sorted(self.jobs.values(), key=lambda j: j.submitted_at)

    def wasted(self) -> list[Job]:
        """Jobs that made a video nobody downloaded: paid for in vain."""
        return [j for j in self.accepted() if j.made_video and not j.video_downloaded]

    def accepted_speech(self) -> list[Job]:
        with self.lock:
            return sorted(self.speech_jobs.values(), key=lambda j: j.submitted_at)

    def _job(self, request_id: str) -> Job | None:
        return self.jobs.get(request_id) or self.speech_jobs.get(request_id)

    def video_url(self, request_id: str) -> str:
        return f"https://{self.host}/files/{request_id}.mp4"

    # -- the protocol ---------------------------------------------------------------------------

    def submit(self, endpoint: str, arguments: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        speech = endpoint in SPEECH_ENDPOINTS
        jobs = self.speech_jobs if speech else self.jobs
        with self.lock:
            record = {"endpoint": endpoint, "input": arguments, "auth": auth, "at": time.monotonic(), "status": None}
            (self.speech_submissions if speech else self.submissions).append(record)
            if not auth or not auth.startswith("Key "):
                record["status"] = 401
                return 401, {"detail": "Missing authorization"}
            problems = _speech_input_problems(arguments) if speech else []
            if problems:
                record["status"] = 422
                return 422, {"detail": problems}
            audio_url = str(arguments.get("audio_url", ""))
            pending = (speech, audio_url)
            behaviour = self._pending_behaviour(pending, arguments)
            if self.submit_429_left.get(pending, 0) > 0:
                self.submit_429_left[pending] -= 1
                record["status"] = 429
                return 429, {"detail": "Too many requests"}
            self.submit_429_left.pop(pending, None)
            self._pending.pop(pending, None)
            simulation = None if speech else self._simulation(endpoint)
            if simulation is not None and not self._take_token(auth, simulation):
                self.rate_limited += 1
                record["status"] = 429
                return 429, {"detail": "Too many requests: slow down"}
            if behaviour.reject:
                record["status"] = behaviour.reject
                return behaviour.reject, {
                    "detail": [{"loc": ["body", "audio_url"], "msg": "Audio is longer than the model accepts", "type": "value_error"}]
                }
            request_id = str(uuid.uuid4())
            jobs[request_id] = Job(
                request_id, endpoint, arguments, behaviour, time.monotonic(), status_429_left=behaviour.status_429
            )
            self.status_5xx_left[request_id] = behaviour.status_5xx
            self.status_drops_left[request_id] = behaviour.status_drops
            if simulation is not None:
                job = jobs[request_id]
                job.key, job.sim = auth, simulation
                job.fails = self._rng.random() < simulation.failure_rate
                threading.Thread(target=self._prepare, args=(job,), name=f"fake-fal-{request_id[:8]}", daemon=True).start()
            record["status"] = 200
            record["request_id"] = request_id
        base = f"https://{self.host}/{'/'.join(endpoint.split('/')[:2])}/requests/{request_id}"
        return 200, {
            "request_id": request_id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
            "queue_position": len(jobs) - 1,
        }

    # -- the simulator's clock -----------------------------------------------------------------------

    def _take_token(self, key: str, simulation: Simulation) -> bool:
        """A token bucket per key: ``burst`` submits at once, refilled at ``submits_per_second``."""
        now = time.monotonic()
        tokens, at = self.buckets.get(key, (float(simulation.burst), now))
        tokens = min(float(simulation.burst), tokens + (now - at) * simulation.submits_per_second * simulation.time_scale)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True

    def _prepare(self, job: Job) -> None:
        """Fetch the job's inputs and learn its length (outside the lock), then let it queue."""
        audio = self._start(job)
        seconds = _video_seconds(job.input, audio)
        with self.lock:
            sim = job.sim
            assert sim is not None
            job.video_seconds = seconds if seconds is not None else 0.0
            if seconds is None and job.fetch_error is None:
                job.fetch_error = "Audio could not be decoded"
            job.ready_at = max(time.monotonic(), job.submitted_at + sim.queue_seconds / sim.time_scale)

    def _tick(self, now: float) -> None:
        """Bring every timed job up to ``now``: end the runs that are over, start queued jobs as runners free up.

        Events are taken in time order, so what happens does not depend on how
        often anybody polls: a job starts when it was ready and a slot was free.
        """
        timed = [j for j in self.jobs.values() if j.sim is not None and j.finished_at is None and not j.cancelled]
        for key in {j.key for j in timed}:
            mine = [j for j in timed if j.key == key]
            running = sorted((j for j in mine if j.started_at is not None), key=lambda j: j.ends_at or 0.0)
            waiting = sorted((j for j in mine if j.started_at is None and j.ready_at is not None), key=lambda j: j.submitted_at)  # fal's queue: first in, first out
            limit = mine[0].sim.concurrency if mine[0].sim else 1
            clock = float("-inf")  # the time of the last event taken
            while True:
                next_end = (running[0].ends_at or 0.0) if running else float("inf")
                candidate = waiting[0] if waiting and len(running) < limit else None
                start = max(candidate.ready_at or 0.0, clock) if candidate is not None else float("inf")
                if min(next_end, start) > now:
                    break
                if next_end <= start:  # a run ending frees its slot before a start at the same moment
                    clock = next_end
                    self._finish(running.pop(0), next_end)
                    continue
                assert candidate is not None
                clock = start
                waiting.pop(0)
                self._run(candidate, start)
                running.append(candidate)
                running.sort(key=lambda j: j.ends_at or 0.0)
                self.max_running = max(self.max_running, len(running))

    def _run(self, job: Job, at: float) -> None:
        sim = job.sim
        assert sim is not None
        job.started_at = at
        compute = (job.video_seconds or 0.0) * sim.speed / sim.time_scale
        if job.fetch_error:
            compute = 0.0
        elif job.fails:
            compute *= self._rng.uniform(0.1, 0.9)
        job.ends_at = at + compute

    def _finish(self, job: Job, at: float) -> None:
        job.finished_at = at
        if job.made_video:
            from shared.fal_models import MODELS, billed_dollars, price_per_second

            sim, model = job.sim, MODELS.get(job.endpoint)
            assert sim is not None
            seconds = job.video_seconds or 0.0
            minimum = sim.min_seconds if sim.min_seconds is not None else (model.min_seconds if model else 0.0)
            if sim.price is not None or model is None:
                dollars = max(seconds, minimum) * (sim.price or 0.0)
            else:
                dollars = billed_dollars(model, seconds) if sim.min_seconds is None else max(seconds, minimum) * price_per_second(model)
            self.billed.append(
                {"request_id": job.request_id, "endpoint": job.endpoint, "seconds": round(max(seconds, minimum), 3), "dollars": round(dollars, 5),
                 "queued": round((at - job.submitted_at) - (job.ends_at - job.started_at if job.started_at and job.ends_at else 0), 3)}
            )

    def _pending_behaviour(self, pending: tuple[bool, str], arguments: dict[str, Any]) -> Behaviour:
        """The behaviour of a submission; a submit fal-client retries after a 429 keeps the one it drew."""
        if pending not in self._pending:
            behaviour = self._behaviour_for(arguments, pending[0])
            self._pending[pending] = behaviour
            self.submit_429_left[pending] = behaviour.submit_429
        return self._pending[pending]

    def status(self, request_id: str, with_logs: bool) -> tuple[int, Any]:
        job = self._job(request_id)
        if job is None:
            return 404, {"detail": "Request not found"}
        if job.status_429_left > 0:
            job.status_429_left -= 1
            return 429, {"detail": "Too many requests"}
        if self.status_5xx_left.get(request_id, 0) > 0:
            self.status_5xx_left[request_id] -= 1
            return 503, {"detail": "Service temporarily unavailable"}
        self._settle_cancel(job)
        if job.sim is not None:
            return self._timed_status(job, with_logs)
        if job.cancel_at is not None and not job.cancelled:  # cancelling: the job neither advances nor ends yet
            pass
        elif job.state != "COMPLETED":
            job.polls += 1
            if job.state == "IN_PROGRESS" and not job.image_fetched:
                self._start(job)
            if job.state == "IN_PROGRESS":
                job.logs.append({"message": f"generated {len(job.logs) + 1} s", "level": "INFO", "source": "user", "timestamp": ""})
                running = job.polls - job.behaviour.queued_polls
                if job.fetch_error or (job.behaviour.outcome != "never" and running > job.behaviour.running_polls):
                    job.finished_at = time.monotonic()
        logs = job.logs if with_logs else None
        if job.state == "IN_QUEUE":
            return 200, {"status": "IN_QUEUE", "queue_position": job.behaviour.queued_polls - job.polls, "response_url": ""}
        if job.state == "IN_PROGRESS":
            return 200, {"status": "IN_PROGRESS", "logs": logs, "response_url": ""}
        body: dict[str, Any] = {"status": "COMPLETED", "logs": logs, "metrics": {"inference_time": 1.5}, "response_url": ""}
        if job.failed:
            body["error"] = self._error_text(job)
            body["error_type"] = "request_cancelled" if job.cancelled else "runner_error"
        return 200, body

    def _timed_status(self, job: Job, with_logs: bool) -> tuple[int, Any]:
        now = time.monotonic()
        self._tick(now)
        if job.state == "IN_QUEUE":
            ahead = sum(
                1 for j in self.jobs.values()
                if j.key == job.key and j.sim is not None and j.started_at is None and j.finished_at is None and not j.cancelled
                and j.submitted_at < job.submitted_at
            )
            return 200, {"status": "IN_QUEUE", "queue_position": ahead, "response_url": ""}
        if job.state == "IN_PROGRESS":
            sim = job.sim
            assert sim is not None and job.started_at is not None
            made = (now - job.started_at) * sim.time_scale / max(sim.speed, 1e-9)
            job.logs = [{"message": f"generated {made:.0f} of {job.video_seconds or 0:.0f} s", "level": "INFO", "source": "user", "timestamp": ""}]
            return 200, {"status": "IN_PROGRESS", "logs": job.logs if with_logs else None, "response_url": ""}
        body: dict[str, Any] = {"status": "COMPLETED", "logs": job.logs if with_logs else None, "response_url": "",
                                "metrics": {"inference_time": round(((job.ends_at or 0) - (job.started_at or 0)) * (job.sim.time_scale if job.sim else 1), 3)}}
        if job.failed:
            body["error"] = self._error_text(job)
            body["error_type"] = "request_cancelled" if job.cancelled else "runner_error"
        return 200, body

    def drop(self, request_id: str) -> bool:
        """Whether to close this status poll's connection without an answer."""
        with self.lock:
            if self.status_drops_left.get(request_id, 0) > 0 and self.status_429_left_of(request_id) == 0:
                self.status_drops_left[request_id] -= 1
                return True
        return False

    def status_429_left_of(self, request_id: str) -> int:
        job = self._job(request_id)
        return job.status_429_left if job else 0

    def _settle_cancel(self, job: Job) -> None:
        if job.cancel_at is not None and not job.cancelled and job.finished_at is None and time.monotonic() >= job.cancel_at:
            job.cancelled = True
            job.finished_at = time.monotonic()

    def _start(self, job: Job) -> bytes | None:
        """Fetch the inputs as a runner would: a presigned URL that does not work fails the job. The audio fetched."""
        job.image_fetched = True
        audio = None
        for name in ("audio_url",) if job.is_speech else ("image_url", "audio_url"):
            try:
                if self.s3_credentials is not None:
                    job.url_params[name] = sigv4.verify(job.input[name], **self.s3_credentials)
                with urllib.request.urlopen(job.input[name], timeout=10) as response:
                    data = response.read()
            except Exception as exc:  # noqa: BLE001 - any failure is the job's error
                job.fetch_error = f"could not download {name}: {exc}"
                return None
            if name == "audio_url":
                audio = data
                job.audio_sha = hashlib.sha256(data).hexdigest()
                if job.is_speech:
                    job.speech = _sounds(data)
                    if job.speech is None:
                        job.fetch_error = "Audio could not be decoded"
        return audio

    def _error_text(self, job: Job) -> str:
        if job.cancelled:
            return "Request was cancelled"
        if job.fetch_error:
            return job.fetch_error
        return "Audio could not be processed" if job.behaviour.outcome == "invalid" else "Runner crashed while generating"

    def result(self, request_id: str) -> tuple[int, Any]:
        job = self._job(request_id)
        if job is None:
            return 404, {"detail": "Request not found"}
        self._settle_cancel(job)
        if job.sim is not None:
            self._tick(time.monotonic())
        if job.state != "COMPLETED":
            return 400, {"detail": "Request is still in progress"}
        if job.failed:
            code = 422 if job.behaviour.outcome == "invalid" else 500
            return code, {"detail": self._error_text(job)}
        if job.is_speech:
            return 200, self.transcription(job)
        if job.behaviour.outcome == "result_error":
            return 500, {"detail": "Runner crashed while writing the result"}
        return 200, {
            "video": {"url": self.video_url(request_id), "content_type": "video/mp4", "file_name": "output.mp4", "file_size": len(self.video)},
            "seed": 42,
        }

    def transcription(self, job: Job) -> dict[str, Any]:
        """What whisper answers: one chunk per stretch of sound heard, named after the audio's file."""
        name = urlsplit(str(job.input["audio_url"])).path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        chunks = [{"timestamp": [start, end], "text": f"{name} part {n}"} for n, (start, end) in enumerate(job.speech or (), start=1)]
        return {"text": " ".join(c["text"] for c in chunks), "chunks": chunks, "inferred_languages": ["en"]}

    def cancel(self, request_id: str) -> tuple[int, Any]:
        job = self._job(request_id)
        if job is None:
            return 404, {"detail": "Request not found"}
        if job.sim is not None:
            self._tick(time.monotonic())
        (self.speech_cancels if job.is_speech else self.cancels).append(request_id)
        self._settle_cancel(job)
        if job.state == "COMPLETED":
            return 400, {"status": "ALREADY_COMPLETED"}
        if job.cancel_at is None:
            job.cancel_at = time.monotonic() + self.cancel_delay
            self._settle_cancel(job)
        return 202, {"status": "CANCELLATION_REQUESTED"}

    def file(self, request_id: str) -> tuple[int, bytes, str]:  # a video job's result
        job = self.jobs.get(request_id)
        if job is None or job.failed:
            return 404, b"not found", "text/plain"
        if job.behaviour.outcome == "bad_video":
            return 200, b"<html>Access denied</html>", "text/html"
        job.video_downloaded = True
        if self.video_maker is not None and job.video_seconds:
            return 200, self.video_maker(job.video_seconds), "video/mp4"
        return 200, self.video, "video/mp4"


def _speech_input_problems(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """What fal's validation (FastAPI, 422) refuses in a whisper input."""
    problems = []

    def problem(field_name: str, msg: str) -> None:
        problems.append({"loc": ["body", field_name], "msg": msg, "type": "value_error"})

    if not isinstance(arguments.get("audio_url"), str):
        problem("audio_url", "field required")
    if arguments.get("task", "transcribe") not in ("transcribe", "translate"):
        problem("task", "value is not a valid enumeration member")
    if arguments.get("chunk_level", "segment") not in ("segment", "word"):
        problem("chunk_level", "value is not a valid enumeration member")
    language = arguments.get("language")
    if language is not None and not (isinstance(language, str) and re.fullmatch(r"[a-z]{2,3}", language)):
        problem("language", "value is not a valid enumeration member")
    return problems


def _sounds(data: bytes) -> list[list[float]] | None:
    """The stretches of sound in an audio file (FFmpeg's silencedetect); None if FFmpeg cannot decode it."""
    from shared.ffmpeg.speech import parse_silences, speech_intervals

    with tempfile.NamedTemporaryFile(suffix=".audio") as source:
        source.write(data)
        source.flush()
        done = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostats", "-i", source.name, "-af", "silencedetect=noise=-35dB:d=0.3:mono=1", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", done.stderr)
    if done.returncode != 0 or duration is None:
        return None
    seconds = int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3])
    return speech_intervals(parse_silences(done.stderr.splitlines(), channels=1)[0], seconds)


def _video_seconds(arguments: dict[str, Any], audio: bytes | None) -> float | None:
    """How long the job's video is: its ``num_frames`` at 25 fps when the model takes one, else its audio's length."""
    frames = arguments.get("num_frames")
    if isinstance(frames, int) and frames > 0:
        return frames / 25
    if audio is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".audio") as source:
        source.write(audio)
        source.flush()
        done = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", source.name],
            capture_output=True, text=True, timeout=60,
        )
    try:
        return float(done.stdout.strip())
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeFal:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if content_type == "application/json":
            self.send_header("x-fal-request-id", "fake")
        self.end_headers()
        self.wfile.write(data)

    def _parts(self) -> tuple[list[str], dict[str, list[str]]]:
        url = urlsplit(self.path)
        return [p for p in url.path.split("/") if p], parse_qs(url.query)

    def do_POST(self) -> None:
        parts, _ = self._parts()
        length = int(self.headers.get("Content-Length") or 0)
        try:
            arguments = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, {"detail": "body is not JSON"})
        if len(parts) < 2:
            return self._send(404, {"detail": "no such app"})
        self._send(*self.fake.submit("/".join(parts), arguments, self.headers.get("Authorization")))

    def do_GET(self) -> None:
        parts, query = self._parts()
        if parts == ["_simulator", "bill"]:  # the simulator's books, for a benchmark talking to it as a process
            return self._send(200, self.fake.bill())
        if len(parts) == 2 and parts[0] == "files":
            code, data, content_type = self.fake.file(parts[1].removesuffix(".mp4"))
            return self._send(code, data, content_type)
        if not self.headers.get("Authorization", "").startswith("Key "):
            return self._send(401, {"detail": "Missing authorization"})
        if len(parts) == 5 and parts[2] == "requests" and parts[4] == "status" and self.fake.drop(parts[3]):
            self.close_connection = True  # a connection that drops mid-exchange: no status line at all
            return
        with self.fake.lock:
            if len(parts) == 5 and parts[2] == "requests" and parts[4] == "status":
                logs = query.get("logs", ["false"])[0] in ("true", "1")
                return self._send(*self.fake.status(parts[3], logs))
            if len(parts) == 4 and parts[2] == "requests":
                return self._send(*self.fake.result(parts[3]))
        self._send(404, {"detail": "Not found"})

    def do_PUT(self) -> None:
        parts, _ = self._parts()
        with self.fake.lock:
            if len(parts) == 5 and parts[2] == "requests" and parts[4] == "cancel":
                return self._send(*self.fake.cancel(parts[3]))
        self._send(404, {"detail": "Not found"})


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator as a process: ``python -m tests.support.fake_fal --workdir D --video V [--simulation JSON]``.

    Prints one JSON line, ``{"host", "ca_file"}`` (point FAL_QUEUE_RUN_HOST and
    SSL_CERT_FILE of the workers there), then serves until killed; ``GET
    https://{host}/_simulator/bill`` answers :meth:`FakeFal.bill`.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--simulation", default="{}", help="Simulation fields as JSON, e.g. {\"speed\": 2, \"concurrency\": 10}")
    args = parser.parse_args(argv)
    fake = FakeFal(args.workdir, args.video, port=args.port)
    fake.simulate(Simulation(**json.loads(args.simulation)))
    fake.start()
    print(json.dumps({"host": fake.host, "ca_file": fake.ca_file}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
