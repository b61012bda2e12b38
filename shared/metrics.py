"""Prometheus metrics: what each worker does, how long each stage takes, how ingest answers.

Three families, served by every service on its own ``METRICS_PORT`` at ``/metrics``:

- **Messages** (:class:`WorkerMetrics`, a Dramatiq middleware): Dramatiq's own
  metric names and labels (``dramatiq_messages_total``, ``…_message_errors_total``,
  ``…_message_retries_total``, ``…_message_rejects_total``, ``…_messages_inprogress``,
  ``…_message_duration_milliseconds``), so dashboards made for Dramatiq's
  Prometheus middleware work unchanged. It is ours rather than Dramatiq's because
  Dramatiq's reads its port and folder from environment variables once, at
  import, in a process the ``dramatiq`` command forks before our code runs;
  ours takes them from ``METRICS_PORT`` and ``TMP_DIR``.
- **Pipeline** (:func:`stage_finished`, :func:`call_ended`, :func:`call_failed`,
  called by ``shared.progress``): seconds per stage, calls ended per status,
  failures per stage.
- **fal.ai and FFmpeg** (:func:`fal_job_ended`, :func:`ffmpeg_ran`): jobs per
  kind and outcome, seconds of video generated, FFmpeg wall time per run.
- **Queues** (``services.ingest.gauges``, read when scraped, served by ingest):
  messages per stage's queue and state, consumers, calls past STAGE_DEADLINE.
- **HTTP** (:class:`RequestMetrics`, a Falcon middleware; ingest): requests per
  route, method and status, and their latency.

A worker runs several processes (``--processes``) and gunicorn several workers,
so the values live in prometheus_client's multiprocess mode: each process writes
its own files in one folder and the process that answers ``/metrics`` adds them
up. That mode must be chosen before the first metric exists, so nothing here
creates one at import: metrics are made on first use, after
:func:`use_multiprocess` ran (a worker's ``process_boot``, gunicorn's
``when_ready``). In a single process (tests, ``callreel serve``) the same
metrics live in memory, in prometheus_client's default registry.

Bookkeeping never takes a worker down: a metric that cannot be recorded is
logged and skipped.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dramatiq

from .owners import pid_exists
from .settings import Settings, get_settings

__all__ = [
    "WorkerMetrics",
    "RequestMetrics",
    "metrics_dir",
    "use_multiprocess",
    "serve_worker_metrics",
    "start_metrics_server",
    "gunicorn_when_ready",
    "gunicorn_child_exit",
    "stage_finished",
    "call_ended",
    "call_failed",
    "environment_failure",
    "fal_job_ended",
    "ffmpeg_ran",
]

log = logging.getLogger("callreel.metrics")

# Dramatiq's buckets, in milliseconds: a poll takes 5 ms, a composition minutes.
MESSAGE_BUCKETS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 30000, 60000, 600000, 900000)
# A stage takes from a second (ingest of a short call) to an hour (fal.ai on a long one).
STAGE_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
FFMPEG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)

_multiprocess_dir: Path | None = None


# -- where the values live ------------------------------------------------------


def metrics_dir(port: int, settings: Settings | None = None) -> Path:
    """The folder shared by the processes whose metrics are served on ``port``.

    Keyed by the port because the port is what every process of one service
    agrees on, including the process that only serves (it knows no service name),
    and two services on one machine never share a port.
    """
    settings = settings or get_settings()
    return Path(settings.tmp_dir) / "callreel-metrics" / str(port)


def use_multiprocess(directory: Path, *, fresh: bool = False) -> None:
    """Keep this process's metrics, and its children's, as files in ``directory``.

    Files an earlier run left behind would be added to this run's numbers, so
    they go first: all of them when the caller starts a run (``fresh``: gunicorn's
    master before it forks), otherwise the ones of dead processes and of this
    pid (a container restart reuses pids): the sibling worker processes boot at
    the same time and their files must stay.
    """
    global _multiprocess_dir
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        pid = _pid_of(path)
        if fresh or pid is None or pid == os.getpid() or not pid_exists(pid):
            path.unlink(missing_ok=True)
    # prometheus_client reads this when it makes a value; children inherit it.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        # Imported before the variable was set: switch now, before any metric exists.
        values.ValueClass = values.MultiProcessValue()
    _multiprocess_dir = directory


def _pid_of(path: Path) -> int | None:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


# -- the metrics, made once per process on first use ----------------------------


_families: dict[str, Any] = {}
# Two threads recording a metric first at the same time would both make it, and the
# second registration raises DuplicateTimeseries (losing that data point).
_families_lock = threading.Lock()


def _family(name: str) -> Any:
    """The metric ``name``, made on first use, once per process whatever the threads."""
    family = _families.get(name)
    if family is None:
        with _families_lock:
            family = _families.get(name)
            if family is None:
                family = _families[name] = _make(name)
    return family


def _make(name: str) -> Any:
    import prometheus_client as prom

    labels = ["queue_name", "actor_name"]
    factories: dict[str, Callable[[], Any]] = {
        "messages": lambda: prom.Counter("dramatiq_messages_total", "The total number of messages processed.", labels),
        "errors": lambda: prom.Counter("dramatiq_message_errors_total", "The total number of errored messages.", labels),
        "retries": lambda: prom.Counter("dramatiq_message_retries_total", "The total number of retried messages.", labels),
        "rejects": lambda: prom.Counter(
            "dramatiq_message_rejects_total", "The total number of dead-lettered messages.", labels
        ),
        "inprogress": lambda: prom.Gauge(
            "dramatiq_messages_inprogress", "The number of messages in progress.", labels, multiprocess_mode="livesum"
        ),
        "delayed": lambda: prom.Gauge(
            "dramatiq_delayed_messages_inprogress",
            "The number of delayed messages in memory.",
            labels,
            multiprocess_mode="livesum",
        ),
        "durations": lambda: prom.Histogram(
            "dramatiq_message_duration_milliseconds",
            "The time spent processing messages.",
            labels,
            buckets=MESSAGE_BUCKETS,
        ),
        "stage_seconds": lambda: prom.Histogram(
            "callreel_stage_duration_seconds",
            "Seconds from a stage's (latest) start to its finish, per stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
        ),
        "calls_ended": lambda: prom.Counter(
            "callreel_calls_ended_total", "Calls that ended, per final video_status.", ["status"]
        ),
        "stage_failures": lambda: prom.Counter(
            "callreel_stage_failures_total", "Calls failed (or ended partial) while in a stage, per stage.", ["stage"]
        ),
        "environment_failures": lambda: prom.Counter(
            "callreel_environment_failures_total",
            "Environmental failures met (the object store away, TMP_DIR full), per stage and kind (storage, disk).",
            ["stage", "kind"],
        ),
        # -- #28: fal.ai jobs and FFmpeg time, for the Grafana dashboard (deploy/grafana/callreel.json)
        "fal_jobs": lambda: prom.Counter(
            "callreel_fal_jobs_total", "fal.ai jobs ended, per kind (avatar, speech) and outcome (completed, failed).",
            ["kind", "outcome"],
        ),
        "fal_video_seconds": lambda: prom.Counter(
            "callreel_fal_video_seconds_total",
            "Seconds of video fal.ai generated (completed avatar segments).",
        ),
        "fal_spend": lambda: prom.Counter(
            "callreel_fal_spend_usd_total",
            "US dollars fal.ai bills for the completed avatar jobs, at the model's list price (shared/fal_models.py).",
        ),
        "ffmpeg_seconds": lambda: prom.Histogram(
            "callreel_ffmpeg_duration_seconds", "Wall seconds of one FFmpeg or ffprobe run, per what it does.", ["what"],
            buckets=FFMPEG_BUCKETS,
        ),
        # -- fal.ai cost and cap (#26) --
        "budget_exceeded": lambda: prom.Counter(
            "callreel_fal_budget_exceeded_total",
            "Call sides sent to local panels because FAL_DAILY_BUDGET_USD would be passed (alert on any increase).",
            ["side"],
        ),
        "fal_rate_limited": lambda: prom.Counter(
            "callreel_fal_rate_limited_total", "Submits fal.ai answered 429 (waited out and submitted again, never failed).", []
        ),
        "requests": lambda: prom.Counter(
            "callreel_http_requests_total", "HTTP requests answered, per route, method and status.", ["route", "method", "status"]
        ),
        "request_seconds": lambda: prom.Histogram(
            "callreel_http_request_duration_seconds",
            "Seconds spent answering an HTTP request, per route and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
        ),
    }
    return factories[name]()


def _record(fn: Callable[..., None]) -> Callable[..., None]:
    """Run a recording function; log a warning instead of raising."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.warning("could not record metric %s", fn.__name__, exc_info=True)

    return wrapper


@_record
def stage_finished(stage: str, seconds: float | None) -> None:
    """A stage's work is done (``progress.finish``) after ``seconds``."""
    if seconds is not None and seconds >= 0:
        _family("stage_seconds").labels(stage).observe(seconds)


@_record
def call_ended(status: str) -> None:
    """A call reached a final ``video_status`` (completed, partial, failed)."""
    _family("calls_ended").labels(status).inc()


@_record
def call_failed(stage: str | None, status: str) -> None:
    """A call was ended by a failure (``progress.fail_call``) while in ``stage``."""
    _family("stage_failures").labels(stage or "unknown").inc()
    _family("calls_ended").labels(status).inc()


@_record
def environment_failure(stage: str, kind: str) -> None:
    """An attempt of ``stage`` met an environmental failure of ``kind`` (retried: ``shared.outage``)."""
    _family("environment_failures").labels(stage, kind).inc()


@_record
def fal_job_ended(kind: str, outcome: str, video_seconds: float | None = None, dollars: float | None = None) -> None:
    """A fal.ai job of ``kind`` ended (``services.generation.lifecycle``); ``video_seconds`` it made and what it cost, if a video."""
    _family("fal_jobs").labels(kind, outcome).inc()
    if video_seconds:
        _family("fal_video_seconds").inc(max(0.0, video_seconds))
    if dollars:
        _family("fal_spend").inc(max(0.0, dollars))


@_record
def ffmpeg_ran(what: str, seconds: float) -> None:
    """An FFmpeg run (``shared.ffmpeg.run``) ended after ``seconds``, whatever its outcome."""
    _family("ffmpeg_seconds").labels(what).observe(seconds)


@_record
def fal_budget_exceeded(side: str) -> None:
    """A side fell back to local panels: today's estimated fal.ai spend would pass FAL_DAILY_BUDGET_USD (the alert)."""
    _family("budget_exceeded").labels(side).inc()


@_record
def fal_rate_limited() -> None:
    """fal.ai answered a submit 429: the segment waits and submits again."""
    _family("fal_rate_limited").inc()


# -- workers --------------------------------------------------------------------


class WorkerMetrics(dramatiq.Middleware):
    """Dramatiq's message metrics, kept across worker processes and served on METRICS_PORT.

    Added by ``shared.broker`` to the RabbitMQ broker when METRICS_PORT is not 0.
    The ``dramatiq`` command starts :func:`serve_worker_metrics` as a fork (a
    sibling of the worker processes, stopped with them).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._started: dict[str, float] = {}
        self._delayed: set[str] = set()

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_worker_metrics]

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        use_multiprocess(self.directory)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from prometheus_client import multiprocess

        # Live gauges of this process stop counting; its counters stay summed.
        multiprocess.mark_process_dead(os.getpid(), str(self.directory))

    @staticmethod
    def _labels(message: dramatiq.Message) -> tuple[str, str]:
        return message.queue_name, message.actor_name

    @_record
    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        _family("rejects").labels(*self._labels(message)).inc()

    @_record
    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        if "retries" in message.options:
            _family("retries").labels(*self._labels(message)).inc()

    @_record
    def before_delay_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._delayed.add(message.message_id)
        _family("delayed").labels(*self._labels(message)).inc()

    @_record
    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        labels = self._labels(message)
        if message.message_id in self._delayed:
            self._delayed.discard(message.message_id)
            _family("delayed").labels(*labels).dec()
        _family("inprogress").labels(*labels).inc()
        self._started[message.message_id] = time.monotonic()

    @_record
    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.Message, *, result: Any = None, exception: Any = None
    ) -> None:
        labels = self._labels(message)
        started = self._started.pop(message.message_id, None)
        if started is not None:
            _family("durations").labels(*labels).observe((time.monotonic() - started) * 1000)
            _family("inprogress").labels(*labels).dec()
        _family("messages").labels(*labels).inc()
        if exception is not None:
            _family("errors").labels(*labels).inc()

    after_skip_message = after_process_message


def serve_worker_metrics() -> int:
    """Serve the worker processes' metrics on METRICS_PORT until stopped (a Dramatiq fork)."""
    settings = get_settings()
    directory = metrics_dir(settings.metrics_port, settings)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        server = _server(settings.metrics_host, settings.metrics_port, _multiprocess_registry(directory))
    except OSError as exc:
        # The workers go on without metrics; say why, once, instead of a traceback.
        log.error(
            "metrics are not served: cannot listen on METRICS_PORT=%d at METRICS_HOST=%s (%s)",
            settings.metrics_port, settings.metrics_host, exc,
        )
        return 1
    log.info("serving worker metrics on %s port %d from %s", settings.metrics_host, settings.metrics_port, directory)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# -- ingest (gunicorn + Falcon) ------------------------------------------------------


class RequestMetrics:
    """Falcon middleware: counts and times every request, labelled by route template.

    The route template (``/calls/{call_id}``), not the path, so a scanner trying
    a thousand paths adds one series, not a thousand.
    """

    def process_request(self, req: Any, resp: Any) -> None:
        req.context.metrics_started = time.monotonic()

    @_record
    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "metrics_started", None)
        route = req.uri_template or "unmatched"
        _family("requests").labels(route, req.method, str(resp.status_code)).inc()
        if started is not None:
            _family("request_seconds").labels(route, req.method).observe(time.monotonic() - started)


def gunicorn_when_ready(server: Any, collectors: Sequence[Any] = ()) -> None:
    """gunicorn ``when_ready`` hook (master, before it forks workers).

    Starts a fresh metrics folder the workers inherit, and serves their summed
    metrics on METRICS_PORT from a thread of the master, so ``/metrics`` stays
    off the public port that Twilio calls.
    """
    settings = get_settings()
    if not settings.metrics_port:
        return
    directory = metrics_dir(settings.metrics_port, settings)
    use_multiprocess(directory, fresh=True)
    registry = _multiprocess_registry(directory)
    for collector in collectors:  # gauges read when scraped (the ingest service's queue and stuck-call gauges)
        registry.register(collector)
    start_metrics_server(settings.metrics_port, registry, host=settings.metrics_host)
    log.info("serving ingest metrics on %s port %d", settings.metrics_host, settings.metrics_port)


def gunicorn_child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook (master): a worker's live gauges stop counting."""
    if _multiprocess_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(_multiprocess_dir))


# -- serving ----------------------------------------------------------------------


def _multiprocess_registry(directory: Path) -> Any:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return registry


def _server(host: str, port: int, registry: Any) -> ThreadingHTTPServer:
    """An HTTP server answering ``GET /metrics`` with ``registry`` on ``host`` (METRICS_HOST).

    Metrics say how busy the service is and which routes exist: nothing a
    stranger should read, so the default host is loopback. ``::`` means every
    address, dual-stack where the host has IPv6 (Railway's private network is
    IPv6), IPv4 only where it does not; the images set it, since Prometheus
    scrapes them from another container.
    """
    from prometheus_client.exposition import MetricsHandler

    class Handler(MetricsHandler.factory(registry)):  # type: ignore[misc]
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404, "metrics are at /metrics")
                return
            super().do_GET()

    class DualStackServer(ThreadingHTTPServer):
        address_family = socket.AF_INET6
        daemon_threads = True

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    class IPv4Server(ThreadingHTTPServer):
        daemon_threads = True

    class IPv6Server(IPv4Server):
        address_family = socket.AF_INET6

    if host not in ("::", ""):
        return (IPv6Server if ":" in host else IPv4Server)((host, port), Handler)
    try:
        return DualStackServer(("::", port), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # the port is taken: say so, do not hide it
            raise
        return IPv4Server(("0.0.0.0", port), Handler)


def start_metrics_server(port: int, registry: Any = None, *, host: str = "127.0.0.1") -> SimpleNamespace:
    """Serve ``registry`` (default: this process's) on ``host``:``port`` from a daemon thread."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    server = _server(host, port, registry)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    return SimpleNamespace(server=server, thread=thread, port=server.server_address[1])
