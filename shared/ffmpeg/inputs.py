"""How FFmpeg and ffprobe open a file that came from outside: one named format, the file protocol only.

Left to guess, FFmpeg picks a demuxer by probing the content, and some
demuxers read other files: an HLS playlist or a concat list names URLs and
paths (``file:///etc/passwd``, ``http://169.254.169.254/…``), and FFmpeg would
fetch them into the video. A recording (MP3, WAV, FLAC, Ogg or M4A), a side video from fal
(MP4) and an avatar (PNG, JPEG, WebP) are each recognised here by their first
bytes, in Python, and opened with that one demuxer (``-f``), through the
``file`` protocol alone (``-protocol_whitelist file``, and a ``file:`` URL so
a name is never read as a protocol). Anything else is refused before FFmpeg
sees it. The recognising is shared/sniff.py's (pure Python: the ingest
service, which has no FFmpeg, sniffs an uploaded recording's format with it).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ..sniff import IMAGE, KNOWN, NAMES, RECORDING, RECORDING_EXTENSIONS, VIDEO, demuxer, recording_format, sniff
from .errors import InvalidMedia

__all__ = [
    "RECORDING",
    "VIDEO",
    "IMAGE",
    "KNOWN",
    "RECORDING_EXTENSIONS",
    "sniff",
    "recording_format",
    "input_options",
    "input_args",
    "file_url",
]

def _format(path: str | Path, accept: Collection[str]) -> str:
    found = sniff(path)
    if found is None or found not in accept:
        wanted = " or ".join(dict.fromkeys(NAMES[name] for name in accept))
        what = f"it is {NAMES[found]}" if found else "its content is none of those"
        raise InvalidMedia(f"{Path(path).name}: not {wanted} ({what})")
    return demuxer(found)


def file_url(path: str | Path) -> str:
    """``path`` as FFmpeg's ``file:`` URL: never read as another protocol whatever its name."""
    return f"file:{Path(path).absolute()}"


def input_options(path: str | Path, accept: Collection[str] = KNOWN) -> dict[str, str]:
    """ffmpeg-python input options opening ``path`` as its sniffed format (one of ``accept``), the file protocol only.

    Raises InvalidMedia when the content is not one of ``accept``.
    """
    return {"f": _format(path, accept), "protocol_whitelist": "file"}


def input_args(path: str | Path, accept: Collection[str] = KNOWN) -> list[str]:
    """The same as command-line arguments, ``-i`` and the ``file:`` URL included (ffprobe: all but ``-i``)."""
    return ["-f", _format(path, accept), "-protocol_whitelist", "file", "-i", file_url(path)]
