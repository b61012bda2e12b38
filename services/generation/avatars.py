"""The image each side's avatar is animated from, as a URL fal.ai can fetch.

``CALLER_AVATAR_URL`` / ``CALLEE_AVATAR_URL`` are passed as they are. Without
them the project's shipped image (``shared.assets.avatar_path``) is stored once
under a key named by its content (``avatars/{side}-{sha}.png``) and passed by
presigned URL, so nothing has to be public and a new image never meets a stale
copy.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from shared import keys
from shared.assets import avatar_path
from shared.settings import Settings
from shared.storage import Storage

__all__ = ["Avatar", "avatar_for"]


@dataclass(frozen=True)
class Avatar:
    url: str  # what fal fetches
    identity: str  # what the video cache compares: the setting's URL, or the image's digest


@functools.lru_cache(maxsize=4)
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def avatar_for(side: str, settings: Settings, storage: Storage, *, expires: int) -> Avatar:
    configured = getattr(settings, f"{side}_avatar_url")
    if configured:
        return Avatar(url=configured, identity=f"url:{configured}")
    path = avatar_path(side)
    digest = _digest(path)
    key = keys.avatar_key(side, digest[:16])
    if not storage.exists(key):
        storage.upload_file(path, key, content_type="image/png")
    return Avatar(url=storage.presigned_url(key, expires=expires), identity=f"sha256:{digest}")
