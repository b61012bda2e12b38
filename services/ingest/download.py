"""A Twilio recording, streamed from Twilio into the object store in constant memory.

The response body is handed to ``storage.upload_fileobj`` as a file object
that reads the network as the upload asks for bytes, so memory stays near one
upload part whatever the recording's size. The body is checked as it flows: a
body longer than ``RECORDING_MAX_BYTES`` or one that ends before its
``Content-Length`` raises from ``read``, which makes the upload abort (a
multipart upload is aborted, a local write is never renamed into place):
nothing half-written is left behind.

Errors say what to do next: ``RecordingNotReady`` (404, Twilio has not
published the file yet), ``TransientDownloadError`` (network, timeouts,
truncated bodies, 5xx, 429: worth another try) and
``progress.PermanentError`` (401/403 bad credentials, other 4xx, too large,
not audio: trying again cannot help).

Twilio answers the media URL with a redirect to its media storage; redirects
are followed over https only, and httpx drops the Basic credentials when a
redirect leaves the original host.
"""

from __future__ import annotations

import json
import logging
from typing import Iterator

import httpx

from shared.progress import PermanentError
from shared.storage import Storage

__all__ = [
    "RecordingNotReady",
    "TransientDownloadError",
    "BodyReader",
    "CONTENT_TYPES",
    "media_url",
    "fetch_recording",
    "delete_recording",
    "describe",
]

log = logging.getLogger("callreel.ingest.download")

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
USER_AGENT = "callreel-ingest"
#: Content types that are certainly not a recording (an error page served with 200).
NOT_AUDIO = ("text/", "application/json", "application/xml", "application/problem+json")


class RecordingNotReady(Exception):
    """Twilio answered 404: right after the callback the file is often not served yet."""


class TransientDownloadError(Exception):
    """A failure another attempt may not meet: network, timeout, truncated body, 5xx, 429."""


def describe(exc: BaseException) -> str:
    """One line for logs and for the call's error message."""
    text = str(exc).strip()
    if isinstance(exc, httpx.HTTPError):
        return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text or exc.__class__.__name__


def media_url(recording_url: str, fmt: str) -> str:
    """Twilio serves a recording's audio at its URL plus ``.mp3`` or ``.wav``."""
    return f"{recording_url}.{fmt}"


class BodyReader:
    """A streamed body as a read-only, non-seekable file, checked as it is read."""

    def __init__(self, chunks: Iterator[bytes], *, expected: int | None, max_bytes: int) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self.expected = expected
        self.max_bytes = max_bytes
        self.received = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        # boto3 asks for a whole upload part (8 MiB) at a time. The pieces are
        # joined once, into one buffer of the exact size: growing a bytearray
        # and copying it out held two part-sized buffers per read and left the
        # allocator's heap fragmented, so the worker's memory crept up with
        # the recording's size instead of staying flat.
        pieces: list[memoryview] = []
        wanted = None if size is None or size < 0 else size
        have = 0
        while wanted is None or have < wanted:
            if not self._pending:
                if not self._next_chunk():
                    break
            take = len(self._pending) if wanted is None else min(len(self._pending), wanted - have)
            pieces.append(self._pending[:take])
            self._pending = self._pending[take:]
            have += take
        return b"".join(pieces)

    def _next_chunk(self) -> bool:
        if self._done:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self._done = True
            self._check_complete()
            return False
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise PermanentError(
                f"The recording is larger than RECORDING_MAX_BYTES ({self.max_bytes} bytes); it was not stored."
            )
        if self.expected is not None and self.received > self.expected:
            raise TransientDownloadError(f"Twilio sent more than the {self.expected} bytes it announced")
        self._pending = memoryview(chunk)
        return True

    def _check_complete(self) -> None:
        if self.expected is not None and self.received != self.expected:
            raise TransientDownloadError(
                f"the download ended after {self.received} of {self.expected} bytes (truncated body)"
            )
        if self.received == 0:
            raise PermanentError("Twilio served an empty recording (0 bytes); there is nothing to make a video from.")


def _https_only(request: httpx.Request) -> None:
    if request.url.scheme != "https":
        raise PermanentError(f"Refusing to follow Twilio to a non-https URL ({request.url.scheme}://{request.url.host})")


def _client(auth: tuple[str, str] | None, timeout: float) -> httpx.Client:
    return httpx.Client(
        auth=auth,
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        # Identity, so Content-Length counts the bytes that are stored.
        headers={"Accept-Encoding": "identity", "User-Agent": USER_AGENT},
        event_hooks={"request": [_https_only]},
    )


def _twilio_message(response: httpx.Response) -> str:
    """Twilio's own explanation from an error body, if it gave one (first KiB only)."""
    try:
        head = next(response.iter_raw(1024), b"")
        message = json.loads(head).get("message")
    except Exception:
        return ""
    return f": {str(message)[:200]}" if message else ""


def check_response(response: httpx.Response) -> None:
    code = response.status_code
    if code == 200:
        return
    if code == 404:
        raise RecordingNotReady(f"Twilio answered 404 Not Found for {response.request.url.path}")
    what = f"HTTP {code} {response.reason_phrase}".strip()
    if code in (401, 403):
        raise PermanentError(
            f"Twilio refused the credentials ({what}{_twilio_message(response)}): "
            "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."
        )
    if code in (408, 429) or code >= 500:
        raise TransientDownloadError(f"Twilio answered {what}")
    raise PermanentError(f"Twilio answered {what}{_twilio_message(response)} for the recording.")


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise TransientDownloadError(f"Twilio sent an invalid Content-Length {raw[:40]!r}") from None
    if value < 0:
        raise TransientDownloadError(f"Twilio sent an invalid Content-Length {raw[:40]!r}")
    return value


def fetch_recording(
    url: str,
    key: str,
    *,
    storage: Storage,
    auth: tuple[str, str],
    fmt: str,
    timeout: float,
    max_bytes: int,
) -> int:
    """Stream ``url`` into ``key``; return the number of bytes stored."""
    try:
        with _client(auth, timeout) as client, client.stream("GET", url) as response:
            check_response(response)
            expected = _content_length(response)
            if expected is not None and expected > max_bytes:
                raise PermanentError(
                    f"The recording is {expected} bytes, larger than RECORDING_MAX_BYTES ({max_bytes}); it was not stored."
                )
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type.startswith(NOT_AUDIO):
                raise PermanentError(f"Twilio served {content_type} instead of the recording's audio.")
            body = BodyReader(response.iter_raw(CHUNK_BYTES), expected=expected, max_bytes=max_bytes)
            storage.upload_fileobj(body, key, content_type=CONTENT_TYPES[fmt])
            return body.received
    except httpx.TooManyRedirects as exc:
        raise PermanentError(f"Twilio redirected too many times ({describe(exc)}).") from None
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise TransientDownloadError(describe(exc)) from exc


def delete_recording(recording_url: str, *, auth: tuple[str, str], timeout: float) -> bool:
    """Delete the recording at Twilio (its REST resource); True when it is gone.

    Best effort: the recording is already stored, so a failure here is logged,
    never the call's failure.
    """
    try:
        with _client(auth, timeout) as client:
            response = client.delete(f"{recording_url}.json")
    except (httpx.HTTPError, PermanentError) as exc:
        log.warning("could not delete the recording at Twilio: %s", describe(exc))
        return False
    if response.status_code in (200, 204, 404):
        return True
    log.warning("could not delete the recording at Twilio: HTTP %s", response.status_code)
    return False
