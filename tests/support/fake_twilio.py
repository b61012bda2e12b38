"""A loopback HTTPS server that behaves like Twilio's recordings endpoint, and signed callbacks.

``FakeTwilio`` serves ``GET /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}.mp3``
(and ``.wav``) behind HTTP Basic auth (Account SID + Auth Token), answers
``DELETE …/Recordings/{RecordingSid}.json`` with 204, and logs every request.
TLS uses a throwaway ``trustme`` CA: point a client at it with
``SSL_CERT_FILE=fake.ca_file`` (httpx reads it), and allow-list ``fake.host``
(``127.0.0.1:<port>``) as a recording host.

Each recording has a script: one behaviour per GET, the last repeating::

    rec = fake.add_recording(b"...", script=["404", "404", "ok"])

Behaviours: ``ok``, ``redirect`` (302 to a media URL, as Twilio does),
``redirect-other-host`` (302 to the same media URL under ``localhost``, another
host name for this server: allow-list ``fake.other_host`` for it to be
followed), ``redirect-http`` (302 to the media URL over plain http),
``redirect-to`` (302 to ``fake.redirect_target``, any URL a test sets),
``429`` (Too Many Requests with ``Retry-After: 1``), ``404``, ``500``, ``503``, ``401``, ``403``, ``truncate`` (announces the full
Content-Length, sends half, closes), ``slow`` (the body in small pieces,
``slow_seconds`` in all), ``stall`` (headers, then nothing for
``stall_seconds``), ``html`` (200 with an HTML error page).

``callback()`` builds the form Twilio posts to a recording status callback and
``sign()`` signs it with the real ``twilio.request_validator.RequestValidator``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import os
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from twilio.request_validator import RequestValidator

__all__ = ["FakeTwilio", "Recording", "account_sid", "call_sid", "recording_sid"]

BEHAVIOURS = ("ok", "redirect", "redirect-other-host", "redirect-http", "redirect-to", "429", "404", "500", "503", "401", "403", "truncate", "slow", "stall", "html")


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def account_sid() -> str:
    return _sid("AC")


def call_sid() -> str:
    return _sid("CA")


def recording_sid() -> str:
    return _sid("RE")


@dataclass
class Recording:
    sid: str
    body: bytes
    script: list[str] = field(default_factory=lambda: ["ok"])
    deleted: bool = False
    gets: int = 0

    def next_behaviour(self) -> str:
        behaviour = self.script[min(self.gets, len(self.script) - 1)]
        self.gets += 1
        return behaviour


@dataclass
class Logged:
    method: str
    path: str
    authorized: bool
    behaviour: str | None = None
    #: Whether the request carried an Authorization header at all (media URLs need none).
    sent_credentials: bool = False


class FakeTwilio:
    def __init__(self, *, account: str | None = None, auth_token: str | None = None, workdir: str | Path | None = None) -> None:
        self.account_sid = account or account_sid()
        self.auth_token = auth_token or uuid.uuid4().hex
        self.recordings: dict[str, Recording] = {}
        self.requests: list[Logged] = []
        self.slow_seconds = 1.0
        self.stall_seconds = 3.0
        self.redirect_target = ""
        self._lock = threading.Lock()
        self._ca = trustme.CA()
        self._workdir = Path(workdir) if workdir else None
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "FakeTwilio":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        # The handshake happens in each request's thread, never in the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        """What to put in TWILIO_RECORDING_HOSTS."""
        return f"127.0.0.1:{self.port}"

    @property
    def other_host(self) -> str:
        """This server under another name (its certificate covers both): what ``redirect-other-host`` goes to."""
        return f"localhost:{self.port}"

    @property
    def ca_file(self) -> str:
        """A PEM file with the CA that signed the server's certificate (for SSL_CERT_FILE)."""
        directory = self._workdir or Path(os.environ.get("TMPDIR", "/tmp"))
        path = directory / f"fake-twilio-ca-{id(self)}.pem"
        if not path.exists():
            self._ca.cert_pem.write_to_path(str(path))
        return str(path)

    # -- recordings ----------------------------------------------------------
    def add_recording(self, body: bytes, *, script: list[str] | tuple[str, ...] = ("ok",), sid: str | None = None) -> Recording:
        unknown = [b for b in script if b not in BEHAVIOURS]
        assert not unknown, f"unknown behaviours {unknown}"
        recording = Recording(sid=sid or recording_sid(), body=body, script=list(script))
        with self._lock:
            self.recordings[recording.sid] = recording
        return recording

    def recording_url(self, recording: Recording | str) -> str:
        sid = recording if isinstance(recording, str) else recording.sid
        return f"https://{self.host}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}"

    def media_gets(self, recording: Recording) -> list[Logged]:
        return [r for r in self.requests if r.method == "GET" and f"/Recordings/{recording.sid}." in r.path]

    # -- callbacks -----------------------------------------------------------
    def callback(self, recording: Recording | None = None, *, call: str | None = None, **fields: str) -> dict[str, str]:
        """The fields Twilio posts to a recordingStatusCallback for a finished dual-channel recording."""
        sid = recording.sid if recording else recording_sid()
        form = {
            "AccountSid": self.account_sid,
            "CallSid": call or call_sid(),
            "RecordingSid": sid,
            "RecordingUrl": self.recording_url(sid),
            "RecordingStatus": "completed",
            "RecordingDuration": "12",
            "RecordingChannels": "2",
            "RecordingSource": "DialVerb",
            # A moment ago: the webhook refuses recordings older than WEBHOOK_MAX_AGE.
            "RecordingStartTime": email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60)),
            "ErrorCode": "0",
        }
        form.update({k: str(v) for k, v in fields.items()})
        return {k: v for k, v in form.items() if v is not None}

    def sign(self, url: str, form: dict[str, str], token: str | None = None) -> str:
        """X-Twilio-Signature for a POST of ``form`` to ``url``, as Twilio computes it."""
        return RequestValidator(token or self.auth_token).compute_signature(url, form)

    # -- serving -------------------------------------------------------------
    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    prefix = f"/2010-04-01/Accounts/{fake.account_sid}/Recordings/"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeTwilio/1.0"

        def log_message(self, *args) -> None:  # quiet
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
                pass  # a client that hung up (timeouts, truncation tests)

        def _log(self, authorized: bool, behaviour: str | None = None) -> None:
            sent = self.headers.get("Authorization") is not None
            with fake._lock:
                fake.requests.append(Logged(self.command, self.path, authorized, behaviour, sent))

        def _json(self, status: int, payload: dict, extra: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str, code: int, extra: dict[str, str] | None = None) -> None:
            self._json(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}, extra)

        def _recording(self, suffixes: tuple[str, ...]) -> tuple[Recording | None, str]:
            if not self.path.startswith(prefix):
                return None, ""
            name = self.path[len(prefix):]
            for suffix in suffixes:
                if name.endswith(suffix):
                    return fake.recordings.get(name[: -len(suffix)]), suffix
            return None, ""

        def do_GET(self) -> None:
            if self.path.startswith("/media/"):
                return self._media()
            authorized = fake._authorized(self.headers.get("Authorization"))
            if not authorized:
                self._log(False)
                return self._error(401, "Authenticate", 20003, {"WWW-Authenticate": 'Basic realm="Twilio API"'})
            recording, suffix = self._recording((".mp3", ".wav"))
            if recording is None or recording.deleted:
                self._log(True, "missing")
                return self._error(404, f"The requested resource {self.path} was not found", 20404)
            with fake._lock:
                behaviour = recording.next_behaviour()
            self._log(True, behaviour)
            self._serve(recording, behaviour, "audio/mpeg" if suffix == ".mp3" else "audio/x-wav")

        def do_DELETE(self) -> None:
            authorized = fake._authorized(self.headers.get("Authorization"))
            self._log(authorized, "delete")
            if not authorized:
                return self._error(401, "Authenticate", 20003)
            recording, _ = self._recording((".json", ""))
            if recording is None or recording.deleted:
                return self._error(404, f"The requested resource {self.path} was not found", 20404)
            recording.deleted = True
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _media(self) -> None:
            # Twilio's media storage: a signed URL, no Basic auth needed.
            sid = self.path[len("/media/"):].split(".")[0]
            recording = fake.recordings.get(sid)
            self._log(True, "media")
            if recording is None:
                return self._error(404, "no such media", 20404)
            self._serve(recording, "ok", "audio/mpeg")

        def _serve(self, recording: Recording, behaviour: str, content_type: str) -> None:
            body = recording.body
            if behaviour == "404":
                return self._error(404, f"The requested resource {self.path} was not found", 20404)
            if behaviour in ("500", "503"):
                return self._error(int(behaviour), "Service unavailable", 20500)
            if behaviour in ("401", "403"):
                return self._error(int(behaviour), "Authenticate" if behaviour == "401" else "Forbidden", 20003)
            if behaviour == "429":
                return self._error(429, "Too Many Requests", 20429, {"Retry-After": "1"})
            if behaviour.startswith("redirect"):
                media = f"/media/{recording.sid}.mp3?Expires=1&Signature=x"
                location = {
                    "redirect": f"https://{fake.host}{media}",
                    "redirect-other-host": f"https://{fake.other_host}{media}",
                    "redirect-http": f"http://{fake.host}{media}",
                    "redirect-to": fake.redirect_target,
                }[behaviour]
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if behaviour == "html":
                page = b"<html><body>Service error</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if behaviour == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif behaviour == "slow":
                pieces = 10
                step = max(1, -(-len(body) // pieces))
                for start in range(0, len(body), step):
                    self.wfile.write(body[start : start + step])
                    self.wfile.flush()
                    time.sleep(fake.slow_seconds / pieces)
            elif behaviour == "stall":
                self.wfile.flush()
                time.sleep(fake.stall_seconds)
                self.wfile.write(body)
            else:
                view = memoryview(body)
                for start in range(0, len(body), 256 * 1024):
                    self.wfile.write(view[start : start + 256 * 1024])

    return Handler
