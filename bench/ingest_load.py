"""The webhook under load: real gunicorn (deploy/gunicorn.conf.py), PostgreSQL and RabbitMQ, signed callbacks.

gunicorn runs exactly as deployed (its config file, the default workers and
threads, INFO logs, Prometheus metrics on their own port) against a private
PostgreSQL database and a private RabbitMQ vhost, both removed afterwards.
Every request is a distinct completed dual-channel recording, signed with
twilio's RequestValidator, so each one is checked, inserted and enqueued (202)
and none is answered from a shortcut.

Two loads, both a fixed number of requests:

- **fixed rate** (open loop): request *i* is due at ``start + i / rate``;
  a pool of client threads sends each at its time, so a slow answer does not
  delay the requests behind it. Latency is from the moment the request was
  due (so time spent waiting for a free client counts) and from the moment
  it was sent.
- **burst** (closed loop): ``concurrency`` clients send back to back; the
  throughput the service sustains on this machine.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import httpx

from bench.measure import ROOT, loadavg

__all__ = ["LoadResult", "WebhookBench", "percentile"]

PATH = "/twilio/recording-status"
PUBLIC_BASE_URL = "https://ingest.bench.example"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank): a value that was actually observed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    name: str
    requests: int
    seconds: float
    statuses: dict[int, int]
    latency_from_due: list[float]  # seconds
    latency_from_send: list[float]
    load: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != 202)


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class WebhookBench:
    """gunicorn serving the ingest app on loopback, with its own database and vhost."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.account_sid = _sid("AC")
        self.auth_token = uuid.uuid4().hex
        self.process: subprocess.Popen | None = None
        self.pg_url = self.vhost_url = None

    def start(self) -> "WebhookBench":
        from tests.support.services import create_pg_database, create_vhost, free_port

        self.pg_url = create_pg_database()
        self.vhost_url = create_vhost()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        bin_dir = Path(sys.executable).parent
        self.env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "CALLREEL_DATA_DIR": str(self.workdir / "data"),
            "DATABASE_URL": self.pg_url,
            "BROKER_URL": self.vhost_url,
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "CALLREEL_API_TOKEN": uuid.uuid4().hex,
            "PORT": str(port),
            "METRICS_PORT": str(free_port()),
        }
        subprocess.run([str(bin_dir / "callreel"), "migrate"], cwd=ROOT, env=self.env, check=True, capture_output=True)
        self.log = self.workdir / "gunicorn.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(bin_dir / "gunicorn"), "-c", "deploy/gunicorn.conf.py"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become healthy: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        from tests.support.services import delete_vhost, drop_pg_database

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: gunicorn's graceful stop of its own workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.pg_url:
            drop_pg_database(self.pg_url)
        if self.vhost_url:
            delete_vhost(self.vhost_url)

    # -- requests --------------------------------------------------------------
    def signed_requests(self, count: int) -> list[tuple[bytes, dict[str, str]]]:
        """``count`` distinct, signed recording-completed callbacks (prepared before the clock starts)."""
        from twilio.request_validator import RequestValidator

        validator = RequestValidator(self.auth_token)
        prepared = []
        for _ in range(count):
            recording = _sid("RE")
            form = {
                "AccountSid": self.account_sid,
                "CallSid": _sid("CA"),
                "RecordingSid": recording,
                "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording}",
                "RecordingStatus": "completed",
                "RecordingDuration": "62",
                "RecordingChannels": "2",
                "RecordingSource": "DialVerb",
                # Recent: the webhook refuses recordings older than WEBHOOK_MAX_AGE.
                "RecordingStartTime": email.utils.format_datetime(dt.datetime.now(dt.timezone.utc)),
                "ErrorCode": "0",
            }
            signature = validator.compute_signature(PUBLIC_BASE_URL + PATH, form)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            prepared.append((urlencode(form).encode(), headers))
        return prepared

    def _run(self, name: str, requests: list[tuple[bytes, dict[str, str]]], clients: int, due: Callable[[int], float | None]) -> LoadResult:
        lock = threading.Lock()
        cursor = iter(range(len(requests)))
        statuses: dict[int, int] = {}
        from_due: list[float] = []
        from_send: list[float] = []
        start = time.monotonic() + 0.2

        def client() -> None:
            with httpx.Client(base_url=self.base, timeout=30) as http:
                while True:
                    with lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    offset = due(index)
                    scheduled = start + (offset or 0.0)
                    wait = scheduled - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    body, headers = requests[index]
                    sent = time.monotonic()
                    try:
                        code = http.post(PATH, content=body, headers=headers).status_code
                    except httpx.HTTPError:
                        code = 0
                    done = time.monotonic()
                    with lock:
                        statuses[code] = statuses.get(code, 0) + 1
                        from_send.append(done - sent)
                        from_due.append(done - (scheduled if offset is not None else sent))

        load = loadavg()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        return LoadResult(name, len(requests), elapsed, statuses, from_due, from_send, load)

    def fixed_rate(self, rate: float, seconds: float, clients: int = 16) -> LoadResult:
        count = max(1, round(rate * seconds))
        return self._run(f"{rate:g} req/s for {seconds:g} s", self.signed_requests(count), clients, lambda i: i / rate)

    def burst(self, count: int, concurrency: int) -> LoadResult:
        return self._run(f"{count} requests, {concurrency} at a time", self.signed_requests(count), concurrency, lambda i: None)

    def warm_up(self, count: int = 20) -> None:
        """First requests open database and broker connections in each worker thread: not what is measured."""
        self._run("warm-up", self.signed_requests(count), 4, lambda i: None)

    def stored_calls(self) -> int:
        import psycopg2

        with psycopg2.connect(self.pg_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM calls")
            return cur.fetchone()[0]
