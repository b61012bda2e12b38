"""A Twilio recording, downloaded through a temp file into the object store.

The body comes down 64 KiB at a time into a file in its own temp folder
under ``TMP_DIR`` and is checked as it flows: a body longer than
``RECORDING_MAX_BYTES`` or one that ends before its ``Content-Length`` stops
the download. Only a whole, checked file is uploaded (``storage.upload_file``
reads it from disk part by part), and the folder goes in every outcome, so
nothing half-written reaches the store. Streaming the network straight into a
multipart upload held up to three 8 MiB parts in memory, so a worker's peak
grew with the recording; through the disk it stays flat (measured:
docs/benchmarks.md, section "Download memory") at the cost of disk space for
the recordings in flight (at most ``RECORDING_MAX_BYTES`` each).

Errors say what to do next: ``RecordingNotReady`` (404, Twilio has not
published the file yet, a kind of ``TransientError``), ``TransientError``
(network, timeouts, truncated bodies, 5xx, 429: worth another try) and
``PermanentError`` (401/403 bad credentials, other 4xx, too large, not audio:
trying again cannot help), both from ``shared.errors``.

Twilio answers the media URL with a redirect to its media storage; redirects
are followed over https only, and httpx drops the Basic credentials when a
redirect leaves the original host. A host off the ``TWILIO_RECORDING_HOSTS``
allow-list is resolved first and refused when any of its addresses is
loopback, private, link-local (the cloud metadata service, 169.254.169.254 and
fd00:ec2::254) or otherwise not public: a redirect must not make the worker
fetch from inside its own network. (A host whose DNS answer changes between
this check and the connection is not caught; the allow-list is the real fence.)
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from shared import disk, pipeline
from shared.errors import PermanentError, TransientError
from shared.models import Stage
from shared.storage import Storage

from .validation import parse_hosts

__all__ = [
    "RecordingNotReady",
    "copy_body",
    "CONTENT_TYPES",
    "media_url",
    "fetch_recording",
    "download_to",
    "delete_recording",
    "describe",
    "is_private_address",
    "check_destination",
]

log = logging.getLogger("callreel.ingest.download")

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "m4a": "audio/mp4"}
USER_AGENT = "callreel-ingest"
#: Content types that are certainly not a recording (an error page served with 200).
NOT_AUDIO = ("text/", "application/json", "application/xml", "application/problem+json")


class RecordingNotReady(TransientError):
    """Twilio answered 404: right after the callback the file is often not served yet."""


def describe(exc: BaseException) -> str:
    """One line for logs and for the call's error message."""
    text = str(exc).strip()
    if isinstance(exc, httpx.HTTPError):
        return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text or exc.__class__.__name__


def media_url(recording_url: str, fmt: str) -> str:
    """Twilio serves a recording's audio at its URL plus ``.mp3`` or ``.wav``."""
    return f"{recording_url}.{fmt}"


def copy_body(chunks: Iterator[bytes], out: BinaryIO, *, expected: int | None, max_bytes: int, who: str = "Twilio") -> int:
    """Write a streamed body to ``out``, checking its size as it comes; the bytes written.

    Raises before writing past ``max_bytes`` or past ``expected`` (the
    Content-Length), and at the end when fewer than ``expected`` came or none.
    """
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise PermanentError(f"The recording is larger than RECORDING_MAX_BYTES ({max_bytes} bytes); it was not stored.")
        if expected is not None and received > expected:
            raise TransientError(f"{who} sent more than the {expected} bytes it announced")
        out.write(chunk)
    if expected is not None and received != expected:
        raise TransientError(f"the download ended after {received} of {expected} bytes (truncated body)")
    if received == 0:
        raise PermanentError(f"{who} served an empty recording (0 bytes); there is nothing to make a video from.")
    return received


def is_private_address(address: str) -> bool:
    """True for any address that is not a public unicast one (loopback, private, link-local, reserved…)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_destination(
    host: str, port: int, *, allowed: frozenset[tuple[str, int]], who: str = "Twilio", setting: str = "TWILIO_RECORDING_HOSTS"
) -> None:
    """Refuse a host off the allow-list's exact entries that resolves to a non-public address."""
    host = host.lower().strip("[]")
    if (host, port) in allowed:
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return  # the connection fails the same way, and is retried as a network error
    private = sorted(a for a in addresses if is_private_address(a))
    if private:
        raise PermanentError(
            f"Refusing to follow {who} to {host}: it is a private address ({', '.join(private)}) "
            f"and not an exact entry of {setting}."
        )


def _destination_check(allowed: frozenset[tuple[str, int]], who: str, setting: str):
    def check(request: httpx.Request) -> None:
        if request.url.scheme != "https":
            raise PermanentError(f"Refusing to follow {who} to a non-https URL ({request.url.scheme}://{request.url.host})")
        check_destination(request.url.host, request.url.port or 443, allowed=allowed, who=who, setting=setting)

    return check


def _client(
    auth: tuple[str, str] | None,
    timeout: float,
    hosts: Iterable[str] = (),
    *,
    authorization: str | None = None,
    who: str = "Twilio",
    setting: str = "TWILIO_RECORDING_HOSTS",
) -> httpx.Client:
    """``auth``: Basic credentials (Twilio's); ``authorization``: a whole header value (a submission's).

    httpx drops either when a redirect leaves the original origin.
    """
    headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT}  # identity: Content-Length counts the bytes stored
    if authorization:
        headers["Authorization"] = authorization
    return httpx.Client(
        auth=auth,
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers=headers,
        # Every request, the first and each redirect's.
        event_hooks={"request": [_destination_check(parse_hosts(hosts), who, setting)]},
    )


def _twilio_message(response: httpx.Response) -> str:
    """Twilio's own explanation from an error body, if it gave one (first KiB only)."""
    try:
        head = next(response.iter_raw(1024), b"")
        message = json.loads(head).get("message")
    except Exception:
        return ""
    return f": {str(message)[:200]}" if message else ""


def check_response(response: httpx.Response, who: str = "Twilio") -> None:
    code = response.status_code
    if code == 200:
        return
    what = f"HTTP {code} {response.reason_phrase}".strip()
    if who != "Twilio":
        # A submitted URL: no publication delay to wait out, and no credentials of ours to blame.
        if code in (408, 429) or code >= 500:
            raise TransientError(f"{who} answered {what}")
        raise PermanentError(f"{who} answered {what} for the recording URL.")
    if code == 404:
        raise RecordingNotReady(f"Twilio answered 404 Not Found for {response.request.url.path}")
    if code in (401, 403):
        raise PermanentError(
            f"Twilio refused the credentials ({what}{_twilio_message(response)}): "
            "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."
        )
    if code in (408, 429) or code >= 500:
        raise TransientError(f"Twilio answered {what}")
    raise PermanentError(f"Twilio answered {what}{_twilio_message(response)} for the recording.")


def _content_length(response: httpx.Response, who: str = "Twilio") -> int | None:
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise TransientError(f"{who} sent an invalid Content-Length {raw[:40]!r}") from None
    if value < 0:
        raise TransientError(f"{who} sent an invalid Content-Length {raw[:40]!r}")
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
    spool_dir: Path,
    call_id: str,
    hosts: Iterable[str] = (),
) -> int:
    """Download ``url`` into a temp folder under ``spool_dir``, then store it at ``key``; the bytes stored.

    The folder is named for the (validated) ``call_id``, as every stage's is,
    so one a killed worker left can be traced to its call.
    """
    with pipeline.temp_folder(Stage.INGEST, call_id, spool_dir) as folder:
        path = folder / f"recording.{fmt}"
        size = download_to(url, path, auth=auth, timeout=timeout, max_bytes=max_bytes, hosts=hosts)
        storage.upload_file(path, key, content_type=CONTENT_TYPES[fmt])
        return size


def download_to(
    url: str,
    path: Path,
    *,
    auth: tuple[str, str] | None,
    timeout: float,
    max_bytes: int,
    hosts: Iterable[str] = (),
    authorization: str | None = None,
    who: str = "Twilio",
    setting: str = "TWILIO_RECORDING_HOSTS",
) -> int:
    """Write the recording at ``url`` to ``path``; the bytes written.

    ``hosts``: the exact entries of ``setting`` (TWILIO_RECORDING_HOSTS, or RECORDING_URL_HOSTS for a
    submitted URL, ``who`` naming its server in messages), trusted without the private-address check.
    """
    try:
        with (
            _client(auth, timeout, hosts, authorization=authorization, who=who, setting=setting) as client,
            client.stream("GET", url) as response,
        ):
            check_response(response, who)
            expected = _content_length(response, who)
            if expected is not None and expected > max_bytes:
                raise PermanentError(
                    f"The recording is {expected} bytes, larger than RECORDING_MAX_BYTES ({max_bytes}); it was not stored."
                )
            if expected is not None:
                disk.ensure_free(path.parent, expected)  # refused before a byte is written: TMP_DIR is full
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type.startswith(NOT_AUDIO):
                raise PermanentError(f"{who} served {content_type} instead of the recording's audio.")
            with path.open("wb") as out:
                return copy_body(response.iter_raw(CHUNK_BYTES), out, expected=expected, max_bytes=max_bytes, who=who)
    except httpx.TooManyRedirects as exc:
        raise PermanentError(f"{who} redirected too many times ({describe(exc)}).") from None
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise TransientError(describe(exc)) from exc


def delete_recording(recording_url: str, *, auth: tuple[str, str], timeout: float, hosts: Iterable[str] = ()) -> bool:
    """Delete the recording at Twilio (its REST resource); True when it is gone.

    Best effort: the recording is already stored, so a failure here is logged,
    never the call's failure.
    """
    try:
        with _client(auth, timeout, hosts) as client:
            response = client.delete(f"{recording_url}.json")
    except (httpx.HTTPError, PermanentError) as exc:
        log.warning("could not delete the recording at Twilio: %s", describe(exc))
        return False
    if response.status_code in (200, 204, 404):
        return True
    log.warning("could not delete the recording at Twilio: HTTP %s", response.status_code)
    return False
