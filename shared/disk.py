"""Room in TMP_DIR: checked before work that needs it, and recognised when a write meets a full disk.

A full disk used to look like bad input: FFmpeg's output cut short reads
"moov atom not found" to the next probe, and the compositor ended the call
``partial``. Here a full disk is named for what it is (:class:`NoSpace`, an
environmental failure retried with backoff): from the errno of a Python
write, from FFmpeg's "No space left on device", or from a folder with almost
no room left after a failure.
"""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

from .errors import NoSpace

__all__ = ["free_bytes", "ensure_free", "no_space", "as_no_space", "MIN_FREE_BYTES"]

#: Below this much free space a failed write or FFmpeg run is put down to the disk, whatever it said.
MIN_FREE_BYTES = 1024 * 1024
#: What FFmpeg (and the C library) print for ENOSPC and EDQUOT.
NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded")
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(folder: Path) -> int | None:
    """Bytes free for this user in ``folder`` (or its nearest existing parent); None if it cannot be told."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def no_space(folder: Path, needed: int | None = None) -> NoSpace:
    """The error that says TMP_DIR is full, with how much is free (and needed, when known)."""
    free = free_bytes(folder)
    facts = [str(folder)]
    if free is not None:
        facts.append(f"{_megabytes(free)} free")
    if needed is not None:
        facts.append(f"about {_megabytes(needed)} needed")
    return NoSpace(f"no space left in TMP_DIR ({', '.join(facts)})")


def ensure_free(folder: Path, needed: int) -> None:
    """Refuse, before starting, work that needs about ``needed`` bytes under ``folder`` when they are not free."""
    free = free_bytes(folder)
    if free is not None and free < needed + MIN_FREE_BYTES:
        raise no_space(folder, needed)


def _is_ffmpeg_error(exc: BaseException) -> bool:
    # Not imported: the services that never run FFmpeg (ingest, generation) must not need it in their image.
    # Where it was never loaded, no exception can be one of its errors.
    errors = sys.modules.get("shared.ffmpeg.errors")
    return errors is not None and isinstance(exc, errors.FFmpegError)


def _says_no_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = f"{exc} {getattr(exc, 'stderr', '') or ''}"
    return any(marker in text for marker in NO_SPACE_TEXTS)


def as_no_space(exc: BaseException, folder: Path) -> NoSpace | None:
    """``exc`` told for what it is when the disk under ``folder`` is why it happened; None otherwise.

    An OSError or FFmpeg failure that says ENOSPC is one; so is any FFmpeg
    failure (a probe reading a file cut short: "moov atom not found") met
    while ``folder`` has less than MIN_FREE_BYTES free.
    """
    seen: set[int] = set()
    ffmpeg = False
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # s3transfer and the stages wrap the error they met
        seen.add(id(cause))
        if _says_no_space(cause):
            return no_space(folder)
        ffmpeg = ffmpeg or _is_ffmpeg_error(cause)
        cause = cause.__cause__ or cause.__context__
    if ffmpeg:
        free = free_bytes(folder)
        if free is not None and free < MIN_FREE_BYTES:
            return no_space(folder)
    return None
