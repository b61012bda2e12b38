"""fal.ai's queue through fal-client: submit, status, result and cancel, and nothing that waits.

fal-client's ``subscribe()`` blocks a thread until the job ends (forever
without ``client_timeout``) and polls every 0.1 s; a video job runs for
minutes. callreel only ever asks one question at a time and lets the broker
bring the next poll back later, so a worker thread is never held by a job.

Errors come back as :class:`FalError` with a ``kind`` that says what to do:

- ``transient``: 408/409/429, 5xx, a network error or timeout. fal-client has
  already retried these (up to 10 times with backoff); try again later,
  it costs no attempt.
- ``rejected``: any other 4xx (422 validation error, 401 bad key, 404 unknown
  request…). Sending the same thing again would get the same answer.

fal-client reads ``FAL_QUEUE_RUN_HOST`` once, when it is imported, into
``fal_client.client.QUEUE_URL_FORMAT``; :func:`check_queue_host` makes sure
the process talks to the host the settings name.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["FalError", "FalQueue", "JobStatus", "classify", "check_queue_host", "fal_queue"]

TRANSIENT_CODES = frozenset({408, 409, 429})
SUBMIT_TIMEOUT = 60.0  # seconds for one HTTP exchange with the queue


class FalError(Exception):
    """A failed exchange with fal.ai; ``kind`` is ``transient`` or ``rejected``."""

    def __init__(self, message: str, *, kind: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code

    @property
    def transient(self) -> bool:
        return self.kind == "transient"


@dataclass(frozen=True)
class JobStatus:
    """Where a fal job stands: ``queued`` (with its position), ``running`` (with logs) or ``done``."""

    state: str
    position: int | None = None
    logs: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "done"


def classify(exc: BaseException) -> FalError:
    """The :class:`FalError` for an exception raised by fal-client or httpx."""
    import httpx
    from fal_client.client import FalClientHTTPError

    if isinstance(exc, FalError):
        return exc
    if isinstance(exc, FalClientHTTPError):
        code = exc.status_code
        kind = "transient" if code in TRANSIENT_CODES or code >= 500 else "rejected"
        return FalError(f"fal.ai answered {code}: {_detail(exc.message)}", kind=kind, status_code=code)
    if isinstance(exc, httpx.HTTPError):
        return FalError(f"fal.ai unreachable: {exc.__class__.__name__}: {exc}", kind="transient")
    raise TypeError(f"not a fal error: {exc!r}")


def _detail(message: Any) -> str:
    """fal's ``detail`` is a string, or FastAPI's list of ``{loc, msg}`` for a validation error."""
    if isinstance(message, list):
        parts = []
        for item in message:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(message)[:2000]


class FalQueue:
    """One model's queue on fal.ai, authenticated with ``Authorization: Key $FAL_KEY``."""

    def __init__(self, key: str, endpoint: str) -> None:
        import fal_client

        self.endpoint = endpoint
        self.client = fal_client.SyncClient(key=key, default_timeout=SUBMIT_TIMEOUT)

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        import httpx
        from fal_client.client import FalClientHTTPError

        try:
            return fn(*args, **kwargs)
        except (FalClientHTTPError, httpx.HTTPError) as exc:
            raise classify(exc) from exc

    def submit(self, arguments: dict[str, Any]) -> str:
        """Queue a job; its request id."""
        handle = self._call(self.client.submit, self.endpoint, arguments)
        return handle.request_id

    def status(self, request_id: str) -> JobStatus:
        from fal_client.client import Completed, InProgress, Queued

        status = self._call(self.client.status, self.endpoint, request_id, with_logs=True)
        if isinstance(status, Queued):
            return JobStatus("queued", position=status.position)
        logs = tuple(str(entry.get("message", entry)) if isinstance(entry, dict) else str(entry) for entry in status.logs or ())
        if isinstance(status, InProgress):
            return JobStatus("running", logs=logs)
        if isinstance(status, Completed):
            return JobStatus("done", logs=logs, error=status.error, error_type=status.error_type)
        raise FalError(f"unexpected status {status!r}", kind="transient")

    def result(self, request_id: str) -> dict[str, Any]:
        """The result JSON of a finished job (one status check, then the response)."""
        result = self._call(self.client.result, self.endpoint, request_id)
        if not isinstance(result, dict):
            raise FalError(f"fal.ai result is not a JSON object: {str(result)[:200]}", kind="rejected")
        return result

    def cancel(self, request_id: str) -> None:
        self._call(self.client.cancel, self.endpoint, request_id)


_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _build(key: str, endpoint: str) -> FalQueue:
    return FalQueue(key, endpoint)


def fal_queue(key: str, endpoint: str) -> FalQueue:
    """The process's client for ``endpoint`` (one httpx connection pool, shared by threads)."""
    with _lock:
        return _build(key, endpoint)


def check_queue_host(host: str) -> None:
    """Fail loudly if fal-client was imported before FAL_QUEUE_RUN_HOST was set as the settings say."""
    from fal_client import client

    expected = f"https://{host}/"
    if client.QUEUE_URL_FORMAT != expected:
        raise RuntimeError(
            f"fal-client talks to {client.QUEUE_URL_FORMAT!r} but FAL_QUEUE_RUN_HOST is {host!r}: "
            "fal-client reads the variable when it is first imported, so set it before the process starts"
        )
