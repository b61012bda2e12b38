"""How fal.ai gets a stored object (a segment's audio, an avatar): a presigned URL, or the bytes as a data URI.

With S3 (every deployed service) fal fetches each input by presigned URL.
``callreel render`` and ``callreel serve`` may run with a local folder as the
store: fal cannot reach it, so each input goes inside the request as a
``data:`` URI, which fal accepts for any file input (its docs, "Data URI
(base64)"). fal-client's own upload (``upload_file``) was the other way, but it
talks to hosts fixed in fal-client's code (``rest.fal.ai``, ``v3.fal.media``:
no setting moves them), so it could be tested against nothing but fal itself.

A data URI makes the request a third larger than the file: inputs are capped
at DATA_URI_MAX_BYTES each (a segment is at most FAL_MAX_SEGMENT_SECONDS of
phone audio, tens of kilobytes a second as MP3, far below it; an avatar is at
most 10 MB by its own check, usually far less). A larger input fails its
segment with the reason, rather than a request fal would refuse.
"""

from __future__ import annotations

import base64
from pathlib import Path

from shared.settings import Settings
from shared.storage import Storage

__all__ = ["DATA_URI_MAX_BYTES", "InputTooLarge", "data_uri", "input_url", "path_url"]

DATA_URI_MAX_BYTES = 12 * 1024 * 1024


class InputTooLarge(ValueError):
    """An input too large to send inside the request (only without S3)."""


def data_uri(path: Path, content_type: str) -> str:
    size = path.stat().st_size
    if size > DATA_URI_MAX_BYTES:
        raise InputTooLarge(
            f"{path.name} is {size} bytes: without S3 (S3_BUCKET) inputs go to fal inside the request, at most {DATA_URI_MAX_BYTES} bytes"
        )
    return f"data:{content_type};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def input_url(storage: Storage, key: str, content_type: str, settings: Settings, workdir: Path, *, expires: int) -> str:
    """What fal fetches ``key`` from: its presigned URL with S3, else its bytes as a data URI."""
    if settings.uses_s3:
        return storage.presigned_url(key, expires=expires)
    local = workdir / f"input-{Path(key).name}"
    storage.download_file(key, local)
    return data_uri(local, content_type)


def path_url(path: Path, content_type: str) -> str:
    """A local file (the shipped avatar) as fal fetches it without S3."""
    return data_uri(path, content_type)
