"""A call's own avatar image: checked, re-encoded as PNG and stored under ``avatars/{callId}-{side}.png``.

The checks, each reported (all at once, so one upload tells the sender
everything that is wrong): PNG, JPEG or WebP by its first bytes (not by a name
or a content type the sender chose), at most AVATAR_MAX_BYTES, decodable by
FFmpeg, and at least AVATAR_MIN_SIDE pixels on its short side (fal's talking
heads are 512 px or more; a smaller face is upscaled into mush).

The image is stored re-encoded (AVATAR_MAX_SIDE on its long side at most), as FFmpeg decoded it: whatever else the file
held (metadata, a second frame, trailing bytes) is not kept, and everything
downstream reads one format.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import keys
from .ffmpeg import FFmpegError, InvalidMedia, probe_video, run, summarise
from .settings import Settings
from .storage import Storage

__all__ = ["AvatarError", "AVATAR_MAX_BYTES", "AVATAR_MIN_SIDE", "image_format", "check_avatar", "store_avatar"]

AVATAR_MAX_BYTES = 10 * 1024 * 1024
AVATAR_MIN_SIDE = 256
DECODE_TIMEOUT = 30
# Stored no larger than this on the long side: fal's talking heads are 512-1024 px, and a 12-megapixel photo as
# PNG would be a 20 MB input for fal to fetch for nothing.
AVATAR_MAX_SIDE = 1536
LIMIT_SIZE = (
    f"scale='if(gte(iw,ih),min(iw,{AVATAR_MAX_SIDE}),-2)':'if(gte(iw,ih),-2,min(ih,{AVATAR_MAX_SIDE}))'"
)


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


def check_avatar(data: bytes, settings: Settings, workdir: Path) -> Path:
    """The image re-encoded as ``workdir/avatar.png`` if ``data`` passes every check, else AvatarError."""
    problems = []
    kind = image_format(data)
    if kind is None:
        problems.append("not a PNG, JPEG or WebP image")
    if len(data) > AVATAR_MAX_BYTES:
        problems.append(f"{len(data)} bytes, more than the {AVATAR_MAX_BYTES} allowed (10 MB)")
    if len(data) == 0:
        problems.append("empty")
    if problems:
        raise AvatarError(problems)
    source = workdir / f"avatar-source.{kind}"
    source.write_bytes(data)
    target = workdir / "avatar.png"
    try:
        run(
            [settings.ffmpeg_binary, "-v", "error", "-nostdin", "-i", str(source), "-frames:v", "1", "-vf", LIMIT_SIZE, "-y", str(target)],
            timeout=DECODE_TIMEOUT,
            what="avatar decode",
        )
        info = probe_video(target, settings)
    except (FFmpegError, InvalidMedia) as exc:
        detail = getattr(exc, "detail", None) or summarise(str(exc))
        raise AvatarError([f"the {kind.upper()} image cannot be decoded ({detail})"]) from None
    if min(info.width, info.height) < AVATAR_MIN_SIDE:
        raise AvatarError([f"{info.width}×{info.height} px: the short side must be at least {AVATAR_MIN_SIDE} px"])
    return target


def store_avatar(call_id: str, side: str, data: bytes, settings: Settings, storage: Storage) -> str:
    """Check ``data`` (AvatarError) and store it as the call's ``side`` avatar; returns the object key."""
    key = keys.call_avatar_key(call_id, side, "png")
    with tempfile.TemporaryDirectory(prefix="callreel-avatar-", dir=settings.tmp_dir or None) as folder:
        image = check_avatar(data, settings, Path(folder))
        storage.upload_file(image, key, content_type="image/png")
    return key
