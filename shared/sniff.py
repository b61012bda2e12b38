"""What a file from outside is, by its first bytes alone: pure Python, no FFmpeg.

shared/ffmpeg/inputs.py opens each file with the one demuxer named here
(never FFmpeg's own guess); the ingest service, whose image has no FFmpeg,
sniffs an uploaded or downloaded recording to store it under its real
extension and to refuse what is no audio before it is stored.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RECORDING", "VIDEO", "IMAGE", "KNOWN", "RECORDING_EXTENSIONS", "NAMES", "sniff", "demuxer", "recording_format"]

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
DEMUXERS = {"m4a": "mov"}
#: The ftyp brands of audio-only MP4 files (iTunes audio, audiobooks).
_M4A_BRANDS = (b"M4A ", b"M4B ")

NAMES = {
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


def demuxer(name: str) -> str:
    """The FFmpeg demuxer that opens what :func:`sniff` named ``name``."""
    return DEMUXERS.get(name, name)
