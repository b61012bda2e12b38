"""Validation of a recording with ffprobe, before any work is spent on it.

A recording comes from outside (Twilio, or whoever can upload one), so every
property the split relies on is checked here and a file that lacks one fails
its call with a reason an operator can act on. ffprobe reads headers only; what
a header cannot promise (that the audio really decodes, for as long as it
says) is checked by the split, which decodes it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.errors import PermanentError
from shared.ffmpeg import RECORDING, FFmpegFailed, InvalidMedia, probe

__all__ = ["RecordingInfo", "probe_recording", "check", "MONO"]

MONO = (
    "recording is mono: callreel needs a stereo recording, one channel per side of the call "
    "(in Twilio, enable dual-channel recording; from a voice-agent platform, send its stereo or multi-channel recording)"
)


@dataclass(frozen=True)
class RecordingInfo:
    stream_index: int  # of the first audio stream, for -map
    channels: int
    sample_rate: int
    codec: str
    format: str
    duration: float | None  # from the headers (an estimate for some MP3s); None when unknown


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN: unknown


def probe_recording(path: str | Path, *, ffprobe: str, max_seconds: float, workdir: str | Path, mono_ok: bool = False) -> RecordingInfo:
    """Check that ``path`` is a dual-channel recording of an acceptable length.

    ``mono_ok``: a mono mix is let through too (``channels`` says so), for a
    platform whose mix is routed by its transcript (route.py). Raises
    PermanentError with the reason when it is not.
    """
    path = Path(path)
    if not path.is_file():
        raise PermanentError("recording is missing")
    if path.stat().st_size == 0:
        raise PermanentError("recording is empty (0 bytes)")
    try:
        info = probe(path, ffprobe=ffprobe, workdir=workdir, accept=RECORDING)
    except FFmpegFailed as exc:
        detail = exc.detail.replace(f"file:{path.absolute()}", "recording").replace(str(path), "recording") or "unknown format"
        raise PermanentError(f"not an audio file: ffprobe cannot read it ({detail})") from None  # no temp paths in the call's row
    except InvalidMedia as exc:
        # Not MP3 or WAV by its first bytes (a playlist, a video, text), or a report ffprobe garbled.
        reason = str(exc).replace(f"{path.name}: ", "", 1)
        raise PermanentError(f"not an audio file: {reason}") from None
    return check(info, max_seconds=max_seconds, mono_ok=mono_ok)


def check(info: dict, *, max_seconds: float, mono_ok: bool = False) -> RecordingInfo:
    """Apply the rules to an ffprobe report (``-show_format -show_streams``)."""
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise PermanentError("not an audio file: it has no audio stream")
    stream = streams[0]
    channels = int(stream.get("channels") or 0)
    if channels == 1 and not mono_ok:
        raise PermanentError(MONO)
    if channels not in (1, 2):
        raise PermanentError(f"recording has {channels} channels: expected 2 (dual-channel, one per side of the call)")
    sample_rate = int(_number(stream.get("sample_rate")) or 0)
    if sample_rate <= 0:
        raise PermanentError("not an audio file: its audio stream has no sample rate")
    fmt = info.get("format", {})
    duration = _number(stream.get("duration"))
    if duration is None:
        duration = _number(fmt.get("duration"))
    if duration is not None:
        if duration <= 0:
            raise PermanentError("recording is empty: its duration is 0 s")
        if duration > max_seconds:
            raise PermanentError(
                f"recording is {duration:.0f} s long, more than the {max_seconds:g} s allowed (RECORDING_MAX_SECONDS)"
            )
    return RecordingInfo(
        stream_index=int(stream.get("index", 0)),
        channels=channels,
        sample_rate=sample_rate,
        codec=str(stream.get("codec_name", "unknown")),
        format=str(fmt.get("format_name", "unknown")),
        duration=duration,
    )
