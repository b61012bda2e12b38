"""A call's own avatar image: checked, re-encoded as PNG and stored under ``avatars/{callId}-{side}.png``.

The checks, each reported (all at once where they can be, so one upload tells
the sender everything that is wrong): PNG, JPEG or WebP by its first bytes (not
by a name or a content type the sender chose), at most AVATAR_MAX_BYTES,
decodable, and at least AVATAR_MIN_SIDE pixels on its short side (fal's
talking heads are 512 px or more; a smaller face is upscaled into mush).

Decoded with Pillow, not FFmpeg: the ingest service checks uploads
(``PUT /calls/{callId}/avatars/{side}``) and its image has no FFmpeg, which
would be a few hundred megabytes for this one check. Pillow refuses images
over its decompression-bomb limit (a small file that would decode to a
gigantic picture) before decoding them.

The image is stored re-encoded (AVATAR_MAX_SIDE on its long side at most):
whatever else the file held (metadata, more frames, trailing bytes) is not
kept, and everything downstream reads one format. EXIF orientation is applied
first, so a phone's portrait photo stays upright.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

from PIL import Image, ImageOps

from . import keys
from .settings import Settings
from .storage import Storage

__all__ = ["AvatarError", "AVATAR_MAX_BYTES", "AVATAR_MIN_SIDE", "AVATAR_MAX_SIDE", "image_format", "check_avatar", "store_avatar"]

AVATAR_MAX_BYTES = 10 * 1024 * 1024
AVATAR_MIN_SIDE = 256
# Stored no larger than this on the long side: fal's talking heads are 512-1024 px, and a 12-megapixel photo as
# PNG would be a 20 MB input for fal to fetch for nothing.
AVATAR_MAX_SIDE = 1536
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class AvatarError(ValueError):
    """An image that cannot be a call's avatar; ``problems`` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def image_format(data: bytes) -> str | None:
    """``png``, ``jpeg`` or ``webp`` by the file's magic bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _decode(data: bytes, kind: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit: refused, not just warned
            image = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[kind]])
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AvatarError([f"the {kind.upper()} image cannot be decoded ({exc})"]) from None
    return ImageOps.exif_transpose(image)


def check_avatar(data: bytes, workdir: Path) -> Path:
    """The image re-encoded as ``workdir/avatar.png`` if ``data`` passes every check, else AvatarError."""
    problems = []
    kind = image_format(data)
    if kind is None:
        problems.append("not a PNG, JPEG or WebP image")
    if len(data) > AVATAR_MAX_BYTES:
        problems.append(f"{len(data)} bytes, more than the {AVATAR_MAX_BYTES} allowed (10 MB)")
    if problems or kind is None:
        raise AvatarError(problems)
    image = _decode(data, kind)
    width, height = image.size
    if min(width, height) < AVATAR_MIN_SIDE:
        raise AvatarError([f"{width}×{height} px: the short side must be at least {AVATAR_MIN_SIDE} px"])
    image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
    image.thumbnail((AVATAR_MAX_SIDE, AVATAR_MAX_SIDE), Image.Resampling.LANCZOS)
    target = workdir / "avatar.png"
    image.save(target, format="PNG")
    return target


def store_avatar(call_id: str, side: str, data: bytes, settings: Settings, storage: Storage) -> str:
    """Check ``data`` (AvatarError) and store it as the call's ``side`` avatar; returns the object key."""
    key = keys.call_avatar_key(call_id, side, "png")
    with tempfile.TemporaryDirectory(prefix="callreel-avatar-", dir=settings.tmp_dir or None) as folder:
        image = check_avatar(data, Path(folder))
        storage.upload_file(image, key, content_type="image/png")
    return key
