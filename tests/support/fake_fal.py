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
and fetch their image and audio URLs when they start, as fal's runners do.

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

__all__ = ["Behaviour", "FakeFal", "Job", "SPEECH_ENDPOINTS"]

SPEECH_ENDPOINTS = ("fal-ai/wizper", "fal-ai/whisper")


@dataclass
class Behaviour:
    """How one submitted job goes."""

    queued_polls: int = 1  # status polls answered IN_QUEUE (position counting down)
    running_polls: int = 1  # then IN_PROGRESS, with a log line each
    outcome: str = "ok"  # ok | error (job fails) | invalid (fails with 422) | never (stays in progress) | bad_video
    reject: int | None = None  # answer the submit itself with this status (422…): no job is made
    submit_429: int = 0  # 429s before the submit is accepted
    status_429: int = 0  # 429s on this job's first status polls


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
    finished_at: float | None = None
    audio_sha: str | None = None
    image_fetched: bool = False
    fetch_error: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    speech: list[list[float]] | None = None  # a speech-to-text job: the sound it heard, [[start, end], …]

    @property
    def is_speech(self) -> bool:
        return self.endpoint in SPEECH_ENDPOINTS

    @property
    def state(self) -> str:
        if self.cancelled or self.finished_at is not None:
            return "COMPLETED"
        if self.polls <= self.behaviour.queued_polls:
            return "IN_QUEUE"
        return "IN_PROGRESS"

    @property
    def failed(self) -> bool:
        return self.cancelled or self.fetch_error is not None or self.behaviour.outcome in ("error", "invalid")


class FakeFal:
    def __init__(self, workdir: Path, video: Path) -> None:
        import trustme

        self.video = video.read_bytes()
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(workdir / "fake-fal-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
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
            # The speech-to-text endpoints' own books.
            self.speech_jobs: dict[str, Job] = {}
            self.speech_submissions: list[dict[str, Any]] = []
            self.speech_cancels: list[str] = []
            self.speech_scripts: list[tuple[str, list[Behaviour]]] = []
            self.speech_default = Behaviour(queued_polls=0, running_polls=1)
            self.submit_429_left: dict[tuple[bool, str], int] = {}
            self._pending: dict[tuple[bool, str], Behaviour] = {}

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
        """The video jobs, in the order they were submitted."""
        with self.lock:
            return sorted(self.jobs.values(), key=lambda j: j.submitted_at)

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
            if behaviour.reject:
                record["status"] = behaviour.reject
                return behaviour.reject, {
                    "detail": [{"loc": ["body", "audio_url"], "msg": "Audio is longer than the model accepts", "type": "value_error"}]
                }
            request_id = str(uuid.uuid4())
            jobs[request_id] = Job(
                request_id, endpoint, arguments, behaviour, time.monotonic(), status_429_left=behaviour.status_429
            )
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
        if job.state != "COMPLETED":
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

    def _start(self, job: Job) -> None:
        """Fetch the inputs as a runner would: a presigned URL that does not work fails the job."""
        job.image_fetched = True
        for name in ("audio_url",) if job.is_speech else ("image_url", "audio_url"):
            try:
                with urllib.request.urlopen(job.input[name], timeout=10) as response:
                    data = response.read()
            except Exception as exc:  # noqa: BLE001 - any failure is the job's error
                job.fetch_error = f"could not download {name}: {exc}"
                return
            if name == "audio_url":
                job.audio_sha = hashlib.sha256(data).hexdigest()
                if job.is_speech:
                    job.speech = _sounds(data)
                    if job.speech is None:
                        job.fetch_error = "Audio could not be decoded"

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
        if job.state != "COMPLETED":
            return 400, {"detail": "Request is still in progress"}
        if job.failed:
            code = 422 if job.behaviour.outcome == "invalid" else 500
            return code, {"detail": self._error_text(job)}
        if job.is_speech:
            return 200, self.transcription(job)
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
        (self.speech_cancels if job.is_speech else self.cancels).append(request_id)
        if job.state == "COMPLETED":
            return 400, {"status": "ALREADY_COMPLETED"}
        job.cancelled = True
        job.finished_at = time.monotonic()
        return 202, {"status": "CANCELLATION_REQUESTED"}

    def file(self, request_id: str) -> tuple[int, bytes, str]:  # a video job's result
        job = self.jobs.get(request_id)
        if job is None or job.failed:
            return 404, b"not found", "text/plain"
        if job.behaviour.outcome == "bad_video":
            return 200, b"<html>Access denied</html>", "text/html"
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
        if len(parts) == 2 and parts[0] == "files":
            code, data, content_type = self.fake.file(parts[1].removesuffix(".mp4"))
            return self._send(code, data, content_type)
        if not self.headers.get("Authorization", "").startswith("Key "):
            return self._send(401, {"detail": "Missing authorization"})
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
