"""What ffprobe says of a file: its report, and the readings the stages take from it.

ffprobe reads headers, not the whole file. Sizes are read with their sample
aspect ratio, because the compositor fits panels by display shape and FFmpeg's
own ``force_original_aspect_ratio`` ignores non-square pixels.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from shared.settings import Settings

from .errors import FFmpegFailed, FFmpegTimeout, InvalidMedia
from .inputs import KNOWN, input_args
from .run import output, run

__all__ = ["PROBE_TIMEOUT", "VideoInfo", "probe", "probe_video", "probe_rendered", "probe_duration"]

# ffprobe reads headers, not the whole file: this is generous.
PROBE_TIMEOUT = 60


@dataclass(frozen=True)
class VideoInfo:
    width: int  # display width: coded width × sample aspect ratio
    height: int
    fps: float  # 0 when the file does not say
    duration: float


def probe(
    path: str | Path,
    *,
    ffprobe: str,
    timeout: float = PROBE_TIMEOUT,
    workdir: str | Path | None = None,
    accept: Collection[str] = KNOWN,
) -> dict:
    """ffprobe's ``-show_format -show_streams`` report on ``path``, opened as one of the formats ``accept`` lists.

    ``workdir``: where the report is written (the call's temp folder), a
    temporary one otherwise. Raises FFmpegTimeout, FFmpegFailed (``detail``:
    ffprobe's words), or InvalidMedia when the file is not of a format in
    ``accept`` (``shared.ffmpeg.inputs``: never a playlist or a list of other
    files) or the report is not JSON.
    """
    path = Path(path)
    args = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *input_args(path, accept)]
    if workdir is None:
        text = output(args, timeout=timeout, what="ffprobe")
    else:
        report = Path(workdir) / "ffprobe.json"
        run(args, timeout=timeout, what="ffprobe", stdout=report)
        text = report.read_text(errors="replace")
    try:
        return json.loads(text or "{}")
    except ValueError:
        raise InvalidMedia(f"{path.name}: ffprobe output unreadable") from None


def _probe(path: Path, settings: Settings, accept: Collection[str] = KNOWN) -> dict:
    try:
        return probe(path, ffprobe=settings.ffprobe_binary, accept=accept)
    except FFmpegTimeout as exc:
        raise InvalidMedia(f"{path.name}: ffprobe timed out") from exc
    except FFmpegFailed as exc:
        raise InvalidMedia(f"{path.name}: {exc.detail}") from None


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0/1")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if 0 < value < 1000 else 0.0


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def probe_video(path: Path, settings: Settings, accept: Collection[str] = KNOWN) -> VideoInfo:
    """The first video stream's display size, frame rate and duration; InvalidMedia when unusable (or not of ``accept``)."""
    return _video_info(path, _probe(path, settings, accept))


def probe_rendered(path: Path, settings: Settings) -> tuple[VideoInfo, float]:
    """A rendered file's picture and its sound's duration, from one ffprobe run; InvalidMedia if either is missing."""
    data = _probe(path, settings)
    return _video_info(path, data), _audio_duration(path, data)


def _video_info(path: Path, data: dict) -> VideoInfo:
    video = next((s for s in data.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise InvalidMedia(f"{path.name}: no video stream")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise InvalidMedia(f"{path.name}: video has no size")
    sar = video.get("sample_aspect_ratio") or "1:1"
    try:
        ratio = Fraction(*map(int, sar.split(":")))
    except (ValueError, ZeroDivisionError, TypeError):
        ratio = Fraction(1)
    if ratio > 0:
        width = round(width * ratio)
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    duration = _float(video.get("duration")) or _float(data.get("format", {}).get("duration"))
    return VideoInfo(width=width, height=height, fps=fps, duration=duration)


def probe_duration(path: Path, settings: Settings) -> float:
    """Duration of a file's audio, in seconds; InvalidMedia when it has none."""
    return _audio_duration(path, _probe(path, settings))


def _audio_duration(path: Path, data: dict) -> float:
    audio = next((s for s in data.get("streams", []) if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise InvalidMedia(f"{path.name}: no audio stream")
    duration = _float(audio.get("duration")) or _float(data.get("format", {}).get("duration"))
    if duration <= 0:
        raise InvalidMedia(f"{path.name}: audio has no duration")
    return duration
