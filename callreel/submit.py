"""``callreel submit FILE|URL``: submit a call to a running callreel (``POST /calls``), optionally wait for its video.

A client of the HTTP API only: it needs the service's address (``--url``) and
the API token (``CALLREEL_API_TOKEN`` in the environment, never on the command
line where ``ps`` shows it), not the database or the store. A local file is
uploaded (multipart, streamed from disk); an https URL is handed over for the
service's ingest worker to fetch, with the Authorization header value read
from ``--recording-auth-file`` when given (a file, for the same reason).

Without ``--external-id`` the id is derived from what is submitted (the
file's SHA-256, or the URL), so running the same command twice makes one call.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import httpx

from .errors import CliError

__all__ = ["submit", "default_external_id", "wait", "TERMINAL"]

TERMINAL = ("completed", "partial", "failed")
TIMEOUT = httpx.Timeout(30.0, write=300.0)  # an upload may take minutes; each answer comes in seconds


def default_external_id(recording: str) -> str:
    """The same recording gives the same id: a repeated command is a duplicate, not a second call."""
    if _is_url(recording):
        return "url-" + hashlib.sha256(recording.encode()).hexdigest()[:40]
    digest = hashlib.sha256()
    with open(recording, "rb") as source:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
    return "file-" + digest.hexdigest()[:40]


def _is_url(recording: str) -> bool:
    return recording.startswith(("https://", "http://"))


def _headers(token: str) -> dict[str, str]:
    if not token:
        raise CliError("set CALLREEL_API_TOKEN to the service's API token")
    return {"Authorization": f"Bearer {token}"}


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400:
        problems = body.get("errors") or [body.get("description") or body.get("title") or response.text[:200]]
        raise CliError(f"the service refused the call (HTTP {response.status_code}): " + "; ".join(str(p) for p in problems))
    return body


def submit(
    recording: str,
    *,
    base_url: str,
    token: str,
    external_id: str | None = None,
    recording_auth: str | None = None,
    transcript: Path | None = None,
    fields: dict[str, str] | None = None,
    avatars: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """POST the call; the service's answer (``id``, ``created``, ``status``, ``status_url``)."""
    fields = {k: v for k, v in (fields or {}).items() if v is not None}
    headers = _headers(token)
    url = base_url.rstrip("/") + "/calls"
    words = transcript.read_text(encoding="utf-8") if transcript is not None else None
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            if _is_url(recording):
                if avatars:
                    raise CliError("avatar images go with an uploaded file: upload the recording, or set them with PUT /calls/{id}/avatars")
                body: dict[str, Any] = {"external_id": external_id or default_external_id(recording), "recording_url": recording, **fields}
                if recording_auth:
                    body["recording_auth"] = recording_auth
                if words is not None:
                    body["transcript"] = words
                return _answer(client.post(url, json=body, headers=headers))
            path = Path(recording)
            if not path.is_file():
                raise CliError(f"no such file: {recording} (give a file, or an https:// URL)")
            data = {"external_id": external_id or default_external_id(recording), **fields}
            with ExitStack() as files:
                parts: list[tuple[str, tuple[str, IO[bytes] | str]]] = []
                if words is not None:
                    parts.append(("transcript", (transcript.name if transcript else "transcript", words)))
                for side, image in (avatars or {}).items():
                    parts.append((f"{side}_avatar", (image.name, files.enter_context(image.open("rb")))))
                parts.append(("recording", (path.name, files.enter_context(path.open("rb")))))  # last: the fields are read first
                return _answer(client.post(url, data=data, files=parts, headers=headers))
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the service at {base_url}: {exc}") from None


def wait(
    status_url: str, *, token: str, every: float = 2.0, stream: IO[str] | None = None, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Poll the call's status until it ends, a line per change of status or stage; the last view."""
    stream = stream or sys.stderr
    headers = _headers(token)
    seen = None
    with httpx.Client(timeout=TIMEOUT) as client:
        while True:
            try:
                view = _answer(client.get(status_url, headers=headers))
            except httpx.HTTPError as exc:
                raise CliError(f"cannot read {status_url}: {exc}") from None
            now = (view.get("status"), view.get("stage"))
            if now != seen:
                stream.write(f"callreel: {now[0]} ({now[1]})\n")
                stream.flush()
                seen = now
            if view.get("status") in TERMINAL:
                return view
            sleep(every)
