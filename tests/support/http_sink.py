"""A loopback HTTP server that records what is POSTed to it: a webhook receiver for tests.

``statuses`` scripts the answers (one per request, the last one repeated), so a
test can make the receiver fail a few times before it accepts; ``headers`` adds
headers to the answers of a status (``{429: {"Retry-After": "5"}}``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping, Sequence

__all__ = ["Received", "HttpSink"]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpSink:
    def __init__(self, statuses: Sequence[int] = (200,), headers: Mapping[int, Mapping[str, str]] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = dict(headers or {})
        self.received: list[Received] = []
        self._arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._arrived:
                    index = len(sink.received)
                    sink.received.append(Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    sink._arrived.notify_all()
                status = sink.statuses[min(index, len(sink.statuses) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                for name, value in sink.headers.get(status, {}).items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/callbacks/video"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def __enter__(self) -> "HttpSink":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
