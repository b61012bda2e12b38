"""Reusing a video fal.ai already made: same audio bytes, model, avatar and settings, same video.

A re-render, a retried call or a recording sent twice would otherwise pay fal
again for a clip callreel already has. The key hashes the segment's audio
bytes, the model, the avatar's identity and the model's input without its
URLs (prompt, resolution, frame count…), so changing any setting that changes
the video changes the key. A packed segment's pieces are in the key too:
its video is only usable cut at the same places.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from shared.fal_models import FalModel
from shared.models import Segment, SegmentState
from shared.storage import ObjectNotFound, Storage

from .avatars import Avatar

__all__ = ["audio_digest", "cache_key", "find_cached", "copy_video"]

VERSION = 1  # bump when the generated video would differ for the same inputs


def audio_digest(storage: Storage, key: str, workdir: Path) -> str:
    path = workdir / f"digest-{Path(key).name}"
    try:
        storage.download_file(key, path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1024 * 1024), b""):
                digest.update(chunk)
        return digest.hexdigest()
    finally:
        path.unlink(missing_ok=True)


def cache_key(
    audio_sha: str, model: FalModel, avatar: Avatar, prompt: str, seconds: float, pieces: Sequence[Sequence[float]] | None = None
) -> str:
    settings = model.build_input("", "", prompt, seconds)
    payload = {"v": VERSION, "audio": audio_sha, "model": model.endpoint, "avatar": avatar.identity, "input": settings}
    if pieces:
        # A packed segment (#26): the same audio cut into other pieces is another plan; never mistaken for one.
        payload["pieces"] = [[round(float(v), 3) for v in piece] for piece in pieces]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def find_cached(key: str, *, exclude_id: int) -> Segment | None:
    """The latest completed segment with this key, if any."""
    return (
        Segment.select()
        .where(
            (Segment.cache_key == key)
            & (Segment.state == SegmentState.COMPLETED)
            & Segment.video_key.is_null(False)
            & (Segment.id != exclude_id)
        )
        .order_by(Segment.finished_at.desc())
        .first()
    )


def copy_video(source_key: str, target_key: str, storage: Storage, workdir: Path) -> bool:
    """Copy the earlier segment's video to this segment's key; False if it is gone from the store."""
    if source_key == target_key:
        return storage.exists(target_key)
    path = workdir / f"cached-{Path(target_key).name}"
    try:
        storage.download_file(source_key, path)
        storage.upload_file(path, target_key, content_type="video/mp4")
    except ObjectNotFound:
        return False
    finally:
        path.unlink(missing_ok=True)
    return True
