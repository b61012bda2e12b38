"""The image each side's avatar is animated from, as a URL fal.ai can fetch.

Which image is the call's presentation's (``shared.presentation``): the call's
own (a checked image stored under ``avatars/{callId}-{side}.png``, or a URL the
host application set), else CALLER_AVATAR_URL / CALLEE_AVATAR_URL, else the
project's shipped image (``shared.assets.avatar_path``).

A URL is passed as it is. A stored image is passed by presigned URL (or, with
no S3, as a data URI: :mod:`.inputs`). The shipped image is stored once under a
key named by its content (``avatars/{side}-{sha}.png``) and passed by presigned
URL, so nothing has to be public and a new image never meets a stale copy.
The identity the video cache compares is the image's digest, so a replaced
avatar never reuses a video of the old face.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from shared import keys
from shared.assets import avatar_path
from shared.presentation import is_stored_avatar
from shared.settings import Settings
from shared.storage import ObjectNotFound, Storage

from .inputs import input_url, path_url

__all__ = ["Avatar", "avatar_for"]

log = logging.getLogger("callreel.generation")


@dataclass(frozen=True)
class Avatar:
    url: str  # what fal fetches
    identity: str  # what the video cache compares: the setting's URL, or the image's digest


@functools.lru_cache(maxsize=4)
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def avatar_for(
    side: str, settings: Settings, storage: Storage, *, expires: int, reference: str | None = None, workdir: Path | None = None
) -> Avatar:
    """``side``'s avatar; ``reference``: the call's (``Presentation.avatar``), None for the deployment's setting."""
    configured = getattr(settings, f"{side}_avatar_url") if reference is None else reference
    if configured and is_stored_avatar(configured) and workdir is not None:
        local = workdir / f"avatar-{side}.png"
        try:
            storage.download_file(configured, local)
        except ObjectNotFound:
            log.warning("the call's %s avatar %s is missing: using the deployment's", side, configured, extra={"side": side})
            return avatar_for(side, settings, storage, expires=expires)
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        return Avatar(url=input_url(storage, configured, "image/png", settings, workdir, expires=expires), identity=f"sha256:{digest}")
    if configured:
        return Avatar(url=configured, identity=f"url:{configured}")
    path = avatar_path(side)
    digest = _digest(path)
    if not settings.uses_s3:
        return Avatar(url=path_url(path, "image/png"), identity=f"sha256:{digest}")
    key = keys.avatar_key(side, digest[:16])
    if not storage.exists(key):
        storage.upload_file(path, key, content_type="image/png")
    return Avatar(url=storage.presigned_url(key, expires=expires), identity=f"sha256:{digest}")
