"""A fault-injecting HTTP proxy in front of an S3 server (moto), for tests that make S3 misbehave.

Clients point ``S3_ENDPOINT_URL`` at the proxy; every request is forwarded to
the real server unchanged (same method, path, query, headers and body, so
signatures still match) and logged. A test can then:

- ``refuse_next(n)``: answer the next ``n`` matching requests with
  ``503 SlowDown``, S3's own "reduce your request rate" error, which boto3
  treats as retryable (throttling);
- ``refuse_for(seconds)``: the same for every matching request in a window;
- ``down_for(seconds)``: be away, as a crashed or unreachable S3 is: the
  port is closed (new connections are refused, ECONNREFUSED) and requests on
  connections already open are dropped unanswered, until the window ends;
- ``hold(match)``: keep the next matching request waiting (not forwarded yet)
  until released or ``seconds`` pass, so a test can act while a client is in
  the middle of a transfer (kill the worker that sent it, for instance).

``match`` is a predicate on :class:`Request` (method, key, query), or ``None``
for every request. The log (``requests``) says which requests were refused or
held and what the server answered, so a test can count writes of a key.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import unquote, urlsplit

from tests.support.wait import wait_for

__all__ = ["FaultyS3Proxy", "Request", "Hold", "key_is", "writes_of", "not_retried"]

# Headers that describe one hop, never forwarded as they are.
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}

SLOW_DOWN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    "<RequestId>{rid}</RequestId><HostId>fault-proxy</HostId></Error>"
)


@dataclass
class Request:
    method: str
    path: str  # /bucket/key…
    query: str
    at: float
    status: int | None = None
    refused: bool = False
    held: bool = False

    @property
    def key(self) -> str:
        """The object key (path-style addressing: /bucket/key), '' for bucket-level requests."""
        parts = unquote(self.path).lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


Match = Callable[[Request], bool] | None


def key_is(key: str, *methods: str) -> Callable[[Request], bool]:
    """A match for requests on ``key`` (optionally only these methods)."""
    return lambda r: r.key == key and (not methods or r.method in methods)


def writes_of(requests: list[Request], key: str) -> int:
    """How many times ``key`` was written successfully (single PUTs and completed multipart uploads)."""
    done = 0
    for r in requests:
        if r.key != key or r.status is None or r.status >= 300:
            continue
        if r.method == "PUT" and "partNumber=" not in r.query and "uploadId=" not in r.query:
            done += 1
        elif r.method == "POST" and "uploadId=" in r.query:  # CompleteMultipartUpload
            done += 1
    return done


def not_retried(requests: list[Request]) -> list[Request]:
    """The refused requests that were never sent again and answered: work a refusal made someone skip.

    A refused request counts as retried when a later request with the same
    method on the same key got an answer from S3 (a 404 to a HEAD is an answer).
    """
    left = []
    for i, refused in enumerate(requests):
        if not refused.refused:
            continue
        later = requests[i + 1 :]
        if not any(r.method == refused.method and r.key == refused.key and not r.refused and r.status is not None and r.status < 500 for r in later):
            left.append(refused)
    return left


@dataclass
class _Refusal:
    match: Match
    left: int | None  # requests still to refuse (None: until ``until``)
    until: float | None

    def applies(self, request: Request, now: float) -> bool:
        if self.match is not None and not self.match(request):
            return False
        if self.until is not None:
            return now < self.until
        return bool(self.left)


@dataclass
class Hold:
    """One held request: ``reached`` is set when it arrives; ``release()`` lets it through."""

    match: Match
    seconds: float
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    request: Request | None = None

    def release(self) -> None:
        self.released.set()

    def wait_reached(self, timeout: float) -> bool:
        return self.reached.wait(timeout)


class FaultyS3Proxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.requests: list[Request] = []
        self._refusals: list[_Refusal] = []
        self._holds: list[Hold] = []
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._stopped = False
        self._server = self._listen(0)

    def _listen(self, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        server.daemon_threads = True
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        return server

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "FaultyS3Proxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self.clear()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults ---------------------------------------------------------------------------------

    def refuse_next(self, count: int, match: Match = None) -> None:
        with self._lock:
            self._refusals.append(_Refusal(match, count, None))

    def refuse_for(self, seconds: float, match: Match = None) -> None:
        with self._lock:
            self._refusals.append(_Refusal(match, None, time.monotonic() + seconds))

    def down_for(self, seconds: float) -> None:
        """Refuse every connection for ``seconds`` (the port closed), then listen again on the same port."""
        port = self._server.server_address[1]
        with self._lock:
            self._down_until = time.monotonic() + seconds
        self._server.shutdown()
        self._server.server_close()

        def come_back() -> None:
            time.sleep(seconds)
            if not self._stopped:
                self._server = self._listen(port)
                self._thread.start()

        threading.Thread(target=come_back, daemon=True).start()

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def hold(self, match: Match, *, seconds: float = 30.0) -> Hold:
        hold = Hold(match, seconds)
        with self._lock:
            self._holds.append(hold)
        return hold

    def clear(self) -> None:
        """No more faults; held requests go through; an outage still running is waited out.

        A test that ends inside its outage (the call failed before the port came
        back) must not hand the closed port to the next test.
        """
        with self._lock:
            self._refusals.clear()
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()
        if not self._stopped:
            wait_for(self._listening, timeout=120, interval=0.1, what="the S3 proxy back after its outage")

    def _listening(self) -> bool:
        if self.down:
            return False
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(self._server.server_address[:2]) == 0

    def refused(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.refused]

    def log(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    # -- deciding -------------------------------------------------------------------------------

    def _admit(self, request: Request) -> tuple[bool, Hold | None]:
        """(refuse?, hold?) for one request, consuming a refusal or a hold."""
        now = time.monotonic()
        with self._lock:
            self.requests.append(request)
            self._refusals = [r for r in self._refusals if r.until is None and r.left or r.until is not None and now < r.until]
            for refusal in self._refusals:
                if refusal.applies(request, now):
                    if refusal.left is not None:
                        refusal.left -= 1
                    request.refused = True
                    return True, None
            for hold in self._holds:
                if not hold.reached.is_set() and (hold.match is None or hold.match(request)):
                    hold.request = request
                    request.held = True
                    self._holds.remove(hold)
                    return False, hold
        return False, None


def _handler(proxy: FaultyS3Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, TimeoutError, OSError):
                pass  # the client went away (a killed worker)

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _proxy(self) -> None:
            url = urlsplit(self.path)
            request = Request(self.command, url.path, url.query, time.monotonic())
            body = self._body()
            if proxy.down:  # a connection opened before the outage: dropped, no answer
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            refuse, hold = proxy._admit(request)
            if refuse:
                request.status = 503
                return self._slow_down()
            if hold is not None:
                hold.reached.set()
                hold.released.wait(hold.seconds)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                request.status = response.status
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                elif response.getheader("Content-Length") is not None:
                    self.send_header("Content-Length", response.getheader("Content-Length"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                upstream.close()

        def _slow_down(self) -> None:
            data = SLOW_DOWN.format(rid=uuid.uuid4().hex[:16].upper()).encode()
            self.send_response(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Retry-After", "1")
            if self.command == "HEAD":
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy

    return Handler
