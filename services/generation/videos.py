"""A finished video, streamed from fal.ai's URL into the object store (fal's URLs expire).

The URL comes from fal's answer, so it is checked like any untrusted input:
https only, a size cap, and the first bytes must be an MP4 (``ftyp``) before
anything is stored. The copy goes through a temp file so an upload can be
retried without downloading again and memory stays at one chunk.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from shared.storage import Storage

__all__ = ["BadVideo", "fetch_video", "store_video", "MAX_VIDEO_BYTES"]

MAX_VIDEO_BYTES = 2 * 1024**3  # a 5-minute 1080p clip is a few hundred MB
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
CHUNK = 1024 * 1024


class BadVideo(ValueError):
    """What fal's URL served is not a video callreel can use (a new job is needed)."""


def fetch_video(url: str, dest: Path, *, max_bytes: int = MAX_VIDEO_BYTES) -> int:
    """Stream ``url`` into ``dest``; the number of bytes. httpx errors are left to the caller (transient)."""
    if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).netloc:
        raise BadVideo(f"video URL is not https: {str(url)[:200]!r}")
    size = 0
    with httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=True) as response:
        if response.status_code in (403, 404, 410):
            raise BadVideo(f"video URL answered {response.status_code}")
        response.raise_for_status()
        with open(dest, "wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise BadVideo(f"video is larger than {max_bytes} bytes")
                out.write(chunk)
    with open(dest, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[4:8] != b"ftyp":
        raise BadVideo("video URL did not serve an MP4")
    return size


def store_video(url: str, key: str, storage: Storage, workdir: Path) -> int:
    """Download ``url`` and upload it as ``key``; its size in bytes."""
    path = workdir / Path(key).name
    try:
        size = fetch_video(url, path)
        storage.upload_file(path, key, content_type="video/mp4")
    finally:
        path.unlink(missing_ok=True)
    return size
