"""How FFmpeg and ffprobe open a file that came from outside: one named format, the file protocol only.

Left to guess, FFmpeg picks a demuxer by probing the content, and some
demuxers read other files: an HLS playlist or a concat list names URLs and
paths (``file:///etc/passwd``, ``http://169.254.169.254/…``), and FFmpeg would
fetch them into the video. A recording (MP3, WAV, FLAC, Ogg or M4A), a side video from fal
(MP4) and an avatar (PNG, JPEG, WebP) are each recognised here by their first
bytes, in Python, and opened with that one demuxer (``-f``), through the
``file`` protocol alone (``-protocol_whitelist file``, and a ``file:`` URL so
a name is never read as a protocol). Anything else is refused before FFmpeg
sees it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

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

# What a stage expects, by the name sniff() gives (an FFmpeg demuxer's, but for m4a). A recording
# from a voice-agent platform or the submission API may be any of these; Twilio's are MP3 or WAV.
# M4A is an MP4 file whose brand says audio only: opened by the mov demuxer, but never taken for a
# video, nor a video for a recording.
RECORDING = ("mp3", "wav", "flac", "ogg", "m4a")
VIDEO = ("mov",)  # mov,mp4,m4a,3gp,3g2,mj2: one demuxer
IMAGE = ("png_pipe", "jpeg_pipe", "webp_pipe")
KNOWN = (*RECORDING, *VIDEO, *IMAGE)
#: A recording's sniffed name → the extension it is stored under (shared/keys.py's RECORDING_FORMATS).
RECORDING_EXTENSIONS = {name: name for name in RECORDING}
#: Sniffed names that are not the demuxer's own.
_DEMUXERS = {"m4a": "mov"}
#: The ftyp brands of audio-only MP4 files (iTunes audio, audiobooks).
_M4A_BRANDS = (b"M4A ", b"M4B ")

_NAMES = {
    "mp3": "MP3",
    "wav": "WAV",
    "flac": "FLAC",
    "ogg": "Ogg",
    "m4a": "M4A",
    "mov": "MP4",
    "png_pipe": "PNG",
    "jpeg_pipe": "JPEG",
    "webp_pipe": "WebP",
}
# Boxes an MP4/MOV file may begin with.
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def sniff(path: str | Path) -> str | None:
    """The format of ``path``'s content, from its first bytes (an FFmpeg demuxer's name, m4a apart); None when it is none of ours."""
    with open(path, "rb") as file:
        head = file.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp_pipe"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"  # an ID3 tag, or an MPEG audio frame's sync word
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return "m4a"
    if head[4:8] in _MP4_BOXES:
        return "mov"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png_pipe"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg_pipe"
    return None


def recording_format(path: str | Path) -> str | None:
    """The extension a recording is stored under (mp3, wav, flac, ogg, m4a), from its first bytes; None: not one we read."""
    found = sniff(path)
    return RECORDING_EXTENSIONS.get(found) if found is not None else None


def _format(path: str | Path, accept: Collection[str]) -> str:
    found = sniff(path)
    if found is None or found not in accept:
        wanted = " or ".join(dict.fromkeys(_NAMES[name] for name in accept))
        what = f"it is {_NAMES[found]}" if found else "its content is none of those"
        raise InvalidMedia(f"{Path(path).name}: not {wanted} ({what})")
    return _DEMUXERS.get(found, found)


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
