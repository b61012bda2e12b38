"""Where a browser fetches a call's videos: presigned S3 URLs, or ``/media/{key}`` for a local store.

The same goes for its transcript (``transcripts/{callId}.json``) and captions
(``captions/{callId}.vtt``), which the status API links to as it links videos.

Videos are private objects. With S3 the answer carries presigned URLs that
expire (``PRESIGNED_URL_EXPIRY``). A local-folder store (embedded mode,
``callreel serve``) has no URL a browser could use, so this app serves those
objects itself, behind the same authentication as the page, with byte ranges
so a ``<video>`` element can seek. Only keys of the shapes ``shared.keys``
makes for these objects are ever signed or served, whatever a column holds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import falcon

from shared.callview import VideoLink
from shared.storage import LocalStorage, Storage, check_key

from .auth import SESSION_OR_TOKEN

__all__ = ["MEDIA_PREFIX", "VIDEO_KEY_RE", "TEXT_KEY_RE", "video_src", "video_link", "send_file", "MediaResource"]

MEDIA_PREFIX = "/media/"
# A call's videos, and its poster (the still the players show before playing).
VIDEO_KEY_RE = re.compile(r"^videos/CA[0-9a-f]{32}(?:(?:-(?:caller|callee)(?:-\d{3})?)?\.mp4|\.jpg)$")
TEXT_KEY_RE = re.compile(r"^(?:transcripts/CA[0-9a-f]{32}\.json|captions/CA[0-9a-f]{32}\.vtt)$")
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".json": "application/json; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
}
CHUNK = 256 * 1024


def video_src(storage: Storage, key: str | None) -> str | None:
    """A URL a browser can play ``key`` from: presigned on S3, this app's media route for a local store."""
    if not key or not _served(key):
        return None
    if isinstance(storage, LocalStorage):
        return MEDIA_PREFIX + check_key(key)
    return storage.presigned_url(key)


def _served(key: str) -> bool:
    return bool(VIDEO_KEY_RE.match(key) or TEXT_KEY_RE.match(key))


def video_link(storage: Storage) -> VideoLink:
    """``shared.callview``'s link for a browser: :func:`video_src` on this store."""
    return functools.partial(video_src, storage)


def _byte_range(req: falcon.Request, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte range asked for, or None for the whole object.

    A Range header this cannot read is ignored, as RFC 9110 allows: the whole
    object is sent. One that starts past the end is a 416.
    """
    try:
        asked = req.range
    except falcon.HTTPInvalidHeader:
        return None
    if asked is None or (req.range_unit or "bytes").lower() != "bytes":
        return None
    first, last = asked
    if first < 0:  # the last -first bytes
        first, last = max(0, size + first), size - 1
    elif last < 0 or last >= size:
        last = size - 1
    if first >= size:
        raise falcon.HTTPRangeNotSatisfiable(size)
    return first, last


def _read(path: Path, first: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as source:
        source.seek(first)
        while length > 0:
            chunk = source.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


class MediaResource:
    """``GET /media/{key}``: a video (or transcript, captions) of the local store, for a signed-in operator or a bearer token."""

    access = SESSION_OR_TOKEN
    uses_database = False  # a session or a token is checked without it

    def __init__(self, storage: Callable[[], Storage]) -> None:
        self._storage = storage

    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        storage = self._storage()
        try:
            check_key(key)
        except ValueError:
            raise falcon.HTTPNotFound() from None
        if not isinstance(storage, LocalStorage) or not _served(key):
            raise falcon.HTTPNotFound()  # S3 objects are fetched by presigned URL, never through here
        path = storage.path(key)
        if not path.is_file():
            raise falcon.HTTPNotFound()
        send_file(req, resp, path, CONTENT_TYPES[path.suffix])

    on_head = on_get


def send_file(req: falcon.Request, resp: falcon.Response, path: Path, content_type: str) -> None:
    """Answer with the file at ``path`` (an existing file), honouring a byte range so a player can seek."""
    size = path.stat().st_size
    resp.content_type = content_type
    resp.set_header("Accept-Ranges", "bytes")
    resp.set_header("Cache-Control", "private, no-cache")
    resp.set_header("X-Content-Type-Options", "nosniff")
    span = _byte_range(req, size) if size else None
    first, last = span or (0, size - 1)
    if span:
        resp.status = falcon.HTTP_206
        resp.content_range = (first, last, size)
    resp.content_length = last - first + 1 if size else 0
    if req.method != "HEAD" and size:
        resp.stream = _read(path, first, last - first + 1)
