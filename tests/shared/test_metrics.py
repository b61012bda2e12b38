"""shared.metrics: pipeline, message and HTTP metrics, their multiprocess folder and their HTTP endpoint.

In this process the metrics live in prometheus_client's default registry
(process-wide), so each test compares values before and after. The
multiprocess mode is exercised in subprocesses, here and in
tests/deploy/test_start_commands.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import dramatiq
import falcon
import falcon.testing
import pytest
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY

from shared import metrics, progress
from shared.models import Call, Stage, VideoStatus
from tests.support.calls import make_call
from tests.support.services import free_port

CALL = "CA" + "5" * 32


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_finish_observes_the_stage_duration_and_the_calls_end(sqlite_db):
    count = value("callreel_stage_duration_seconds_count", stage="compositor")
    total = value("callreel_stage_duration_seconds_sum", stage="compositor")
    completed = value("callreel_calls_ended_total", status="completed")
    make_call(CALL)
    progress.begin(CALL, Stage.COMPOSITOR)
    progress.finish(CALL, Stage.COMPOSITOR, video_status=VideoStatus.COMPLETED)
    call = Call.get_by_id(CALL)
    assert value("callreel_stage_duration_seconds_count", stage="compositor") == count + 1
    observed = value("callreel_stage_duration_seconds_sum", stage="compositor") - total
    assert observed == pytest.approx((call.compositor_finished_at - call.compositor_started_at).total_seconds(), abs=1e-3)
    assert value("callreel_calls_ended_total", status="completed") == completed + 1
    # A stage that records columns but does not end the call counts no call.
    progress.finish(CALL, Stage.COMPOSITOR, video_url="x")
    assert value("callreel_calls_ended_total", status="completed") == completed + 1


def test_finish_of_a_stage_never_begun_observes_nothing(sqlite_db):
    count = value("callreel_stage_duration_seconds_count", stage="ingest")
    make_call(CALL)
    progress.finish(CALL, Stage.INGEST)
    assert value("callreel_stage_duration_seconds_count", stage="ingest") == count


def test_fail_call_counts_a_failure_of_its_stage_once(sqlite_db):
    failures = value("callreel_stage_failures_total", stage="audio")
    failed = value("callreel_calls_ended_total", status="failed")
    make_call(CALL)
    progress.begin(CALL, Stage.AUDIO)
    assert progress.fail_call(CALL, "recording is mono")
    assert not progress.fail_call(CALL, "again")
    assert value("callreel_stage_failures_total", stage="audio") == failures + 1
    assert value("callreel_calls_ended_total", status="failed") == failed + 1


def test_a_metric_that_cannot_be_recorded_never_raises(monkeypatch, caplog):
    def broken(name):
        raise RuntimeError("registry on fire")

    monkeypatch.setattr(metrics, "_family", broken)
    metrics.stage_finished("audio", 1.0)
    metrics.call_failed("audio", "failed")
    assert "could not record metric" in caplog.text


def test_worker_metrics_count_messages_errors_and_durations(tmp_path):
    broker = StubBroker()
    # No process_boot here: that would switch this whole test process to multiprocess files.
    broker.add_middleware(metrics.WorkerMetrics(tmp_path / "metrics"))

    def ok(n):
        return n

    def boom(n):
        raise ValueError("nope")

    dramatiq.actor(ok, broker=broker, actor_name="metrics_ok", queue_name="metrics-test")
    bad = dramatiq.actor(boom, broker=broker, actor_name="metrics_boom", queue_name="metrics-test", max_retries=0)
    good = broker.get_actor("metrics_ok")
    labels = {"queue_name": "metrics-test"}
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        good.send(1)
        good.send(2)
        bad.send(3)
        broker.join("metrics-test", fail_fast=False)
        worker.join()
    finally:
        worker.stop()

    assert value("dramatiq_messages_total", actor_name="metrics_ok", **labels) == 2
    assert value("dramatiq_message_errors_total", actor_name="metrics_ok", **labels) == 0
    assert value("dramatiq_messages_total", actor_name="metrics_boom", **labels) == 1
    assert value("dramatiq_message_errors_total", actor_name="metrics_boom", **labels) == 1
    assert value("dramatiq_message_duration_milliseconds_count", actor_name="metrics_ok", **labels) == 2
    assert value("dramatiq_messages_inprogress", actor_name="metrics_ok", **labels) == 0
    assert metrics.serve_worker_metrics in metrics.WorkerMetrics(tmp_path).forks
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_request_metrics_label_by_route_template_not_path():
    class Thing:
        def on_get(self, req, resp, thing_id):
            resp.media = {"id": thing_id}

    app = falcon.App(middleware=[metrics.RequestMetrics()])
    app.add_route("/things/{thing_id}", Thing())
    client = falcon.testing.TestClient(app)
    route = {"route": "/things/{thing_id}", "method": "GET"}
    before = value("callreel_http_requests_total", status="200", **route)
    seconds = value("callreel_http_request_duration_seconds_count", **route)
    unmatched = value("callreel_http_requests_total", route="unmatched", method="GET", status="404")
    assert client.simulate_get("/things/a").status_code == 200
    assert client.simulate_get("/things/b").status_code == 200
    assert client.simulate_get("/nowhere/1").status_code == 404
    assert value("callreel_http_requests_total", status="200", **route) == before + 2
    assert value("callreel_http_request_duration_seconds_count", **route) == seconds + 2
    assert value("callreel_http_requests_total", route="unmatched", method="GET", status="404") == unmatched + 1


def test_metrics_server_answers_prometheus_over_http():
    metrics.stage_finished("generation", 42.0)
    running = metrics.start_metrics_server(free_port())
    try:
        url = f"http://127.0.0.1:{running.port}"
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
            body = resp.read().decode()
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        assert 'callreel_stage_duration_seconds_count{stage="generation"}' in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/other", timeout=10)
        assert err.value.code == 404
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_a_taken_metrics_port_is_an_error_not_a_silent_fallback():
    running = metrics.start_metrics_server(free_port())
    try:
        with pytest.raises(OSError):
            metrics.start_metrics_server(running.port)
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_worker_metrics_fork_reports_a_taken_port_and_returns(settings_env, caplog):
    running = metrics.start_metrics_server(free_port())
    try:
        settings_env(METRICS_PORT=str(running.port))
        assert metrics.serve_worker_metrics() == 1
        assert f"cannot listen on METRICS_PORT={running.port}" in caplog.text
    finally:
        running.server.shutdown()
        running.server.server_close()


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from pathlib import Path
    from shared import metrics

    folder = Path(sys.argv[1])
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    for pid in (dead.pid, os.getpid(), alive.pid):
        (folder / f"counter_{pid}.db").write_bytes(b"")
    metrics.use_multiprocess(folder)
    left = sorted(p.name for p in folder.iterdir())
    alive.kill()
    (folder / f"counter_{alive.pid}.db").unlink()  # a stand-in, not a real metrics file
    # Two processes write, one folder adds them up.
    metrics.call_ended("completed")
    child = subprocess.run([sys.executable, "-c", "from shared import metrics; metrics.call_ended('completed')"])
    from prometheus_client import generate_latest
    text = generate_latest(metrics._multiprocess_registry(folder)).decode()
    metrics.use_multiprocess(folder, fresh=True)
    print(json.dumps({"left": left, "alive": f"counter_{alive.pid}.db", "text": text,
                      "after_fresh": sorted(p.name for p in folder.iterdir())}))
    """
)


def test_multiprocess_folder_sums_processes_and_drops_what_earlier_runs_left(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, str(tmp_path / "m")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # A dead process's file and one with this process's own pid (an earlier run) go; a live sibling's stays.
    assert result["left"] == [result["alive"]]
    assert 'callreel_calls_ended_total{status="completed"} 2.0' in result["text"]
    assert result["after_fresh"] == []
