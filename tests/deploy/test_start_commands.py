"""The images' exact start commands, run here as plain processes against real servers.

Each service is started with the command from its Dockerfile (or docker-compose.yml),
its environment taken from docker-compose.yml with the wiring pointed at this
machine: the real PostgreSQL, a private RabbitMQ vhost, moto's S3 server. Then:
it consumes its own queue and no other (RabbitMQ's management API says so), its
metrics endpoint is scraped over HTTP, and SIGTERM ends it cleanly with nothing
left behind, a busy worker finishing its message first.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import contracts, keys
from shared.models import Call, Stage, VideoStatus
from tests.deploy.test_compose import command_of, default_of
from tests.support import deploy, media, services
from tests.support.calls import make_call
from tests.support.deploy import ROOT, WORKERS
from tests.support.env import process_env
from tests.support.wait import log_tail, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

MANAGEMENT = "http://127.0.0.1:15672/api"
UNKNOWN_CALL = "CA" + "0" * 32
# How long to wait for a process to come up or go away: a ceiling, not an expectation.
PATIENCE = 90


@pytest.fixture(scope="module")
def stack():
    return deploy.compose()


@pytest.fixture(scope="module")
def vhost_url(rabbitmq_url):
    """A vhost of this module's own, so no other test's messages or consumers are in the way."""
    url = services.create_vhost()
    yield url
    services.delete_vhost(url)


@pytest.fixture
def service_env(stack, pg_url, pg_db, vhost_url, s3, s3_server, tmp_path):
    """The environment docker-compose.yml gives a service, wired to this machine's servers."""

    def make(name: str, **overrides: str) -> dict[str, str]:
        compose = {key: default_of(value) for key, value in stack["services"][name]["environment"].items() if value is not None}
        return process_env(inherit=False, **{
            "HOME": str(tmp_path),
            **compose,
            **s3_server.env(s3.bucket),
            "DATABASE_URL": pg_url,
            "BROKER_URL": vhost_url,
            "RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672",
            "METRICS_PORT": str(services.free_port()),
            "TMP_DIR": str(tmp_path / "tmp"),
            "CALLREEL_DATA_DIR": str(tmp_path / "data"),
            "LOG_LEVEL": "INFO",
            **overrides,
        })

    return make


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Start ``argv`` in a session of its own; whatever happens, nothing of it outlives the test."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(PATIENCE)
                except subprocess.TimeoutExpired:
                    pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the session this test started, nothing else


def watching(proc: subprocess.Popen, log: Path) -> dict:
    """``wait_for`` options for these tests: fail as soon as ``proc`` exits, and show its log."""
    return {"process": proc, "describe": log_tail(log), "timeout": PATIENCE, "interval": 0.3}


def http_get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


def scrape(port: int) -> dict[tuple[str, tuple], float] | None:
    answer = http_get(f"http://127.0.0.1:{port}/metrics")
    if not answer or answer[0] != 200:
        return None
    samples = {}
    for family in text_string_to_metric_families(answer[1]):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def consumers(vhost_url: str) -> dict[str, int]:
    vhost = urllib.parse.quote(vhost_url.rsplit("/", 1)[1], safe="")
    request = urllib.request.Request(f"{MANAGEMENT}/queues/{vhost}")
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    with urllib.request.urlopen(request, timeout=10) as resp:
        return {q["name"]: q.get("consumers", 0) for q in json.load(resp)}


def leftovers(session: int, marker: str) -> list[str]:
    """Processes still in ``session``, or whose command line mentions ``marker`` (FFmpeg runs in sessions of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, sid = fields[0], int(fields[3])
        if state != "Z" and (sid == session or marker in cmdline):
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def stop_cleanly(proc: subprocess.Popen, log: Path, marker: str) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(PATIENCE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after SIGTERM:\n{log.read_text()[-4000:]}")
    assert proc.returncode == 0, log.read_text()[-4000:]
    wait_for(
        lambda: not leftovers(proc.pid, marker), timeout=10, interval=0.2, what="nothing left behind after SIGTERM",
        describe=lambda: "\n".join(leftovers(proc.pid, marker)),
    )


def assert_no_consumer(vhost_url: str, queue: str) -> None:
    """The stopped worker's consumer is gone (RabbitMQ's statistics lag by a few seconds)."""
    wait_for(lambda: not consumers(vhost_url).get(queue), timeout=PATIENCE, interval=0.5, what=f"the consumer on {queue} to go with its worker")


def sender(vhost_url: str):
    """A broker of its own that only publishes (the process's global broker stays as it is)."""
    from shared.broker import build_broker
    from shared.settings import load_settings

    return build_broker(load_settings({"BROKER_URL": vhost_url, "METRICS_PORT": "0"}))


def message_for(contract: contracts.Contract) -> dict:
    """Arguments naming nothing that exists: every actor skips them, and counts a message."""
    values = {"call_id": UNKNOWN_CALL, "side": "caller", "segment_id": 987654321, "job_id": 987654321, "index": 0, "plan": "no-such-plan"}
    return {p: values[p] for p in contract.params}


# -- workers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(WORKERS))
def test_worker_command_consumes_its_own_queue_serves_metrics_and_stops_on_sigterm(name, stack, service_env, vhost_url, tmp_path):
    queue = WORKERS[name]
    env = service_env(name)
    argv = deploy.start_argv(command_of(name, stack), env)
    assert argv[:3] == ["python", "-m", "shared.dramatiq_cli"]
    log = tmp_path / f"{name}.log"
    port = int(env["METRICS_PORT"])
    with running(argv, env, log) as proc:
        wait_for(lambda: scrape(port) is not None, what="its metrics endpoint", **watching(proc, log))
        # The management API reports each consumer a few seconds after it starts:
        # wait for both, then check there is nothing else.
        wait_for(lambda: consumers(vhost_url).get(queue) and consumers(vhost_url).get(f"{queue}.DQ"), what=f"consumers on {queue} and {queue}.DQ", **watching(proc, log))
        busy = {q for q, n in consumers(vhost_url).items() if n}
        assert busy == {queue, f"{queue}.DQ"}, f"{name} consumes {sorted(busy)}"

        broker = sender(vhost_url)
        own = [c for c in contracts.CONTRACTS if c.queue_name == queue]
        for contract in own:
            broker.enqueue(contract.message(**message_for(contract)))
        broker.close()

        def counted():
            samples = scrape(port) or {}
            return all(
                sample(samples, "dramatiq_messages_total", queue_name=queue, actor_name=c.actor_name) >= 1 for c in own
            ) and samples

        samples = wait_for(counted, what="the messages in its metrics", **watching(proc, log))
        for contract in own:
            labels = {"queue_name": queue, "actor_name": contract.actor_name}
            assert sample(samples, "dramatiq_message_duration_milliseconds_count", **labels) >= 1
            assert sample(samples, "dramatiq_messages_inprogress", **labels) == 0
        stop_cleanly(proc, log, env["TMP_DIR"])
    assert_no_consumer(vhost_url, queue)


SLOW_FFMPEG = """#!/bin/sh
# FFmpeg that starts late, so the test can stop the worker while a message is in progress.
sleep 3
exec ffmpeg "$@"
"""


def test_sigterm_lets_a_busy_audio_worker_finish_its_message(stack, service_env, vhost_url, s3, tmp_path):
    recording = media.tone_call(tmp_path / "call.mp3", 5.0)
    call_id = keys.new_call_id()
    s3.upload_file(recording, keys.recording_key(call_id))
    make_call(call_id, video_status=VideoStatus.PENDING, stage=Stage.AUDIO, recording_channels=2)
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(SLOW_FFMPEG)
    wrapper.chmod(0o755)
    env = service_env("audio", FFMPEG_BINARY=str(wrapper))
    log = tmp_path / "audio.log"
    port = int(env["METRICS_PORT"])
    with running(deploy.start_argv(command_of("audio", stack), env), env, log) as proc:
        wait_for(lambda: consumers(vhost_url).get("audio"), what="a consumer on audio", **watching(proc, log))
        broker = sender(vhost_url)
        broker.enqueue(contracts.SPLIT_CHANNELS.message(call_id=call_id))
        broker.close()
        labels = {"queue_name": "audio", "actor_name": "split_channels"}
        wait_for(lambda: sample(scrape(port) or {}, "dramatiq_messages_inprogress", **labels) == 1, what="the split in progress", **watching(proc, log))
        wait_for(lambda: leftovers(-1, str(wrapper)), what="FFmpeg running", **watching(proc, log))
        stop_cleanly(proc, log, str(tmp_path))
    # It finished rather than dropped the work: the call moved on, both sides are stored.
    call = Call.get_by_id(call_id)
    assert call.audio_finished_at is not None and call.stage == Stage.GENERATION, log.read_text()[-4000:]
    for side in ("caller", "callee"):
        assert s3.exists(keys.side_audio_key(call_id, side))
    assert_no_consumer(vhost_url, "audio")


# -- ingest (gunicorn) ----------------------------------------------------------------------------------


def test_ingest_command_serves_http_and_request_metrics_and_stops_on_sigterm(stack, service_env, tmp_path):
    env = service_env("ingest", PORT=str(services.free_port()), GUNICORN_WORKERS="2", GUNICORN_THREADS="2")
    argv = deploy.start_argv(command_of("ingest", stack), env)
    assert argv[0] == "gunicorn"
    log = tmp_path / "ingest.log"
    base = f"http://127.0.0.1:{env['PORT']}"
    metrics_port = int(env["METRICS_PORT"])
    with running(argv, env, log) as proc:
        wait_for(lambda: (http_get(f"{base}/healthz") or (0,))[0] == 200, what="/healthz", **watching(proc, log))
        for _ in range(5):
            assert http_get(f"{base}/healthz")[0] == 200
        assert http_get(f"{base}/calls/{UNKNOWN_CALL}")[0] in (401, 403, 404)
        labels = {"route": "/healthz", "method": "GET", "status": "200"}

        def counted():
            samples = scrape(metrics_port) or {}
            return sample(samples, "callreel_http_requests_total", **labels) >= 6 and samples

        # Summed over both gunicorn workers, served by the master on METRICS_PORT, not on PORT.
        samples = wait_for(counted, what="the requests in its metrics", **watching(proc, log))
        assert sample(samples, "callreel_http_request_duration_seconds_count", route="/healthz", method="GET") >= 6
        assert (http_get(f"{base}/metrics") or (0,))[0] == 404
        stop_cleanly(proc, log, env["TMP_DIR"])
