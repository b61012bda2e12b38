"""What waits in each stage's queue, from RabbitMQ's management API.

Two readers need it: the console's backlog (which service to scale) and the
sweeper, which must tell a call whose message is waiting in a queue from one
whose message is lost, and must not act for a stage that no worker consumes.

``RABBITMQ_MANAGEMENT_URL`` names the API; the vhost is the one ``BROKER_URL``
names. Per stage's queue (``shared.pipeline``'s table names each stage's
contract, whose queue it is): messages ready, in progress (delivered, not yet
acked), delayed (Dramatiq's ``.DQ`` queue: retries and fal polls waiting for
their time), dead (``.XQ``) and the number of consumers (0: no worker runs).

The management API refreshes its numbers every few seconds (RabbitMQ's
``collect_statistics_interval``, 5 s by default), so answers are kept for
``CACHE_SECONDS``: a page reloaded by many people costs one request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from .pipeline import PIPELINE
from .settings import Settings

__all__ = ["QueueState", "QueueReader", "QueuesUnavailable", "vhost_of", "management_endpoint"]

CACHE_SECONDS = 5.0
TIMEOUT_SECONDS = 3.0
COLUMNS = "name,messages,messages_ready,messages_unacknowledged,consumers"


class QueuesUnavailable(Exception):
    """The management API did not answer; the message says why without its credentials."""


@dataclass(frozen=True)
class QueueState:
    """One stage's queue."""

    ready: int
    in_progress: int
    delayed: int
    dead: int
    consumers: int

    @property
    def waiting(self) -> int:
        """Messages that will still reach a worker: ready, being worked on, or delayed. Dead ones will not."""
        return self.ready + self.in_progress + self.delayed


def vhost_of(broker_url: str) -> str:
    """The vhost an amqp URL names (``/`` when it names none, as pika reads it)."""
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def management_endpoint(url: str, vhost: str) -> tuple[str, tuple[str, str] | None]:
    """The queues URL of a vhost, with the URL's user:password taken out as Basic auth."""
    parts = urlsplit(url)
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/api/queues/{quote(vhost, safe='')}?columns={COLUMNS}", auth


class QueueReader:
    def __init__(
        self, settings: Settings, *, get: Callable[..., httpx.Response] = httpx.get, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = settings.rabbitmq_management_url
        self._vhost = vhost_of(settings.broker_url)
        self._get = get
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, Any]]] | None = None

    @property
    def configured(self) -> bool:
        return bool(self._url)

    def forget(self) -> None:
        """Drop the kept answer: the next read asks the API."""
        with self._lock:
            self._cached = None

    def _queues(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        url, auth = management_endpoint(self._url, self._vhost)
        try:
            response = self._get(url, auth=auth, timeout=TIMEOUT_SECONDS, headers={"Accept": "application/json"})
            response.raise_for_status()
            queues = {q["name"]: q for q in response.json() if isinstance(q, dict) and "name" in q}
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else exc.__class__.__name__
            raise QueuesUnavailable(reason) from None
        with self._lock:
            self._cached = (self._clock(), queues)
        return queues

    def stages(self) -> dict[str, QueueState]:
        """Each stage's queue, by stage name; QueuesUnavailable when the API does not answer."""
        if not self._url:
            raise QueuesUnavailable("RABBITMQ_MANAGEMENT_URL is not set")
        queues = self._queues()
        states = {}
        for row in PIPELINE:
            name = row.contract.queue_name
            queue, delayed, dead = (queues.get(n, {}) for n in (name, f"{name}.DQ", f"{name}.XQ"))
            states[row.name] = QueueState(
                ready=int(queue.get("messages_ready") or 0),
                in_progress=int(queue.get("messages_unacknowledged") or 0),
                delayed=int(delayed.get("messages") or 0),
                dead=int(dead.get("messages") or 0),
                consumers=int(queue.get("consumers") or 0),
            )
        return states
