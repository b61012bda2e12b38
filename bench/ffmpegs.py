"""Which FFmpeg a benchmark runs: the first ``ffmpeg`` and ``ffprobe`` on PATH.

Every command here, and every worker the pipeline section starts, finds FFmpeg
by name, so putting a folder first on PATH changes the build measured for all
of them at once (``scripts/image-ffmpeg.sh`` makes such a folder from the
FFmpeg the images ship).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from shared.ffmpeg import ffmpeg_version

__all__ = ["put_first", "first_on_path", "version"]


def _check(folder: Path) -> Path:
    folder = folder.resolve()
    missing = [tool for tool in ("ffmpeg", "ffprobe") if not os.access(folder / tool, os.X_OK)]
    if missing:
        raise ValueError(f"{folder} has no runnable {' or '.join(missing)}")
    return folder


def put_first(folder: Path) -> None:
    """Make ``folder``'s FFmpeg the one this process and its children run, from now on."""
    os.environ["PATH"] = f"{_check(folder)}{os.pathsep}{os.environ.get('PATH', '')}"


@contextmanager
def first_on_path(folder: Path) -> Iterator[None]:
    """``folder``'s FFmpeg for the commands started inside the block."""
    before = os.environ.get("PATH", "")
    put_first(folder)
    try:
        yield
    finally:
        os.environ["PATH"] = before


def version() -> str:
    """The version FFmpeg on PATH reports (``7.1.5-0+deb13u1``), or ``?``."""
    return ffmpeg_version("ffmpeg") or "?"
