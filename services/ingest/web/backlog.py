"""The backlog per stage: what waits in each service's queue, so a person sees which service to scale.

With ``RABBITMQ_MANAGEMENT_URL`` set it asks RabbitMQ's management API about
the broker's vhost (from ``BROKER_URL``): per stage's queue, messages ready,
in progress (delivered, not yet acked), delayed (Dramatiq's ``.DQ`` queue:
retries and fal polls waiting for their time), dead (``.XQ``) and the number
of consumers (0: no worker is running). Each stage's queue is named after it
(``shared.contracts``). The database's count of calls still
at each stage is always given beside it, and is all there is without the
management API, or when it does not answer.

The management API refreshes its numbers every few seconds, so answers are
kept for ``CACHE_SECONDS``: a page reloaded by many people costs one request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from shared.calls import calls_per_stage
from shared.models import STAGES
from shared.settings import Settings

__all__ = ["StageBacklog", "Backlog", "BacklogReader", "vhost_of"]

log = logging.getLogger("callreel.ingest.backlog")

CACHE_SECONDS = 5.0
TIMEOUT_SECONDS = 3.0
COLUMNS = "name,messages,messages_ready,messages_unacknowledged,consumers"


@dataclass
class StageBacklog:
    stage: str
    calls: int  # calls at this stage and not ended, from the database
    ready: int | None = None  # None: the queue numbers are unknown
    in_progress: int | None = None
    delayed: int | None = None
    dead: int | None = None
    consumers: int | None = None


@dataclass
class Backlog:
    stages: list[StageBacklog]
    source: str  # "rabbitmq" or "database"
    error: str | None = None  # why the queue numbers are missing, when configured

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "error": self.error, "stages": [vars(s) for s in self.stages]}


def vhost_of(broker_url: str) -> str:
    """The vhost an amqp URL names (``/`` when it names none, as pika reads it)."""
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _management_endpoint(url: str, vhost: str) -> tuple[str, tuple[str, str] | None]:
    """The queues URL of a vhost, with the URL's user:password taken out as Basic auth."""
    parts = urlsplit(url)
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/api/queues/{quote(vhost, safe='')}?columns={COLUMNS}", auth


class BacklogReader:
    def __init__(
        self, settings: Settings, *, get: Callable[..., httpx.Response] = httpx.get, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = settings.rabbitmq_management_url
        self._vhost = vhost_of(settings.broker_url)
        self._get = get
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, int]]] | None = None

    @property
    def uses_rabbitmq(self) -> bool:
        return bool(self._url)

    def _queues(self) -> dict[str, dict[str, int]]:
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        url, auth = _management_endpoint(self._url, self._vhost)
        response = self._get(url, auth=auth, timeout=TIMEOUT_SECONDS, headers={"Accept": "application/json"})
        response.raise_for_status()
        queues = {q["name"]: q for q in response.json() if isinstance(q, dict) and "name" in q}
        with self._lock:
            self._cached = (self._clock(), queues)
        return queues

    def read(self) -> Backlog:
        counts = calls_per_stage()
        stages = [StageBacklog(stage, counts.get(stage, 0)) for stage in STAGES]
        if not self._url:
            return Backlog(stages, "database")
        try:
            queues = self._queues()
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else exc.__class__.__name__
            log.warning("RabbitMQ management API unavailable: %s", reason)
            return Backlog(stages, "database", error=f"RabbitMQ management API unavailable ({reason})")
        for row in stages:
            queue, delayed, dead = (queues.get(name, {}) for name in (row.stage, f"{row.stage}.DQ", f"{row.stage}.XQ"))
            row.ready = int(queue.get("messages_ready") or 0)
            row.in_progress = int(queue.get("messages_unacknowledged") or 0)
            row.delayed = int(delayed.get("messages") or 0)
            row.dead = int(dead.get("messages") or 0)
            row.consumers = int(queue.get("consumers") or 0)
        return Backlog(stages, "rabbitmq")
