"""What the compositor needs to know about its inputs before it builds the graph.

Every input is probed first: a side video that ffprobe cannot read is caught
here, so that side falls back to a local panel instead of failing the whole
stitch. Sizes are read with their sample aspect ratio, because the graph fits
panels by display shape and FFmpeg's own ``force_original_aspect_ratio``
ignores non-square pixels.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from shared.settings import Settings
from shared.speech import parse_silences, silencedetect_options, speech_intervals

from .runner import summarise

__all__ = ["MediaError", "VideoInfo", "probe_video", "probe_rendered", "probe_duration", "detect_speech", "resolve_font", "graph_file_option", "ffmpeg_version", "threaded_cli"]

log = logging.getLogger("callreel.compositor")

PROBE_TIMEOUT = 60


class MediaError(ValueError):
    """A file FFmpeg cannot use (missing stream, unreadable, empty)."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # display width: coded width × sample aspect ratio
    height: int
    fps: float  # 0 when the file does not say
    duration: float


def _probe(path: Path, settings: Settings) -> dict:
    try:
        done = subprocess.run(
            [settings.ffprobe_binary, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{path.name}: ffprobe timed out") from exc
    if done.returncode != 0:
        raise MediaError(f"{path.name}: {summarise(done.stderr)}")
    try:
        return json.loads(done.stdout)
    except ValueError as exc:
        raise MediaError(f"{path.name}: ffprobe output unreadable") from exc


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


def probe_video(path: Path, settings: Settings) -> VideoInfo:
    """The first video stream's display size, frame rate and duration; MediaError when unusable."""
    return _video_info(path, _probe(path, settings))


def probe_rendered(path: Path, settings: Settings) -> tuple[VideoInfo, float]:
    """A rendered file's picture and its sound's duration, from one ffprobe run; MediaError if either is missing."""
    data = _probe(path, settings)
    return _video_info(path, data), _audio_duration(path, data)


def _video_info(path: Path, data: dict) -> VideoInfo:
    video = next((s for s in data.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise MediaError(f"{path.name}: no video stream")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError(f"{path.name}: video has no size")
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
    """Duration of a file's audio, in seconds; MediaError when it has none."""
    return _audio_duration(path, _probe(path, settings))


def _audio_duration(path: Path, data: dict) -> float:
    audio = next((s for s in data.get("streams", []) if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise MediaError(f"{path.name}: no audio stream")
    duration = _float(audio.get("duration")) or _float(data.get("format", {}).get("duration"))
    if duration <= 0:
        raise MediaError(f"{path.name}: audio has no duration")
    return duration


def detect_speech(path: Path, settings: Settings, *, channel: int, duration: float) -> list[list[float]]:
    """Where ``channel`` of ``path`` is louder than SILENCE_THRESHOLD_DB: the highlight's fallback.

    The audio stage stores these intervals; this only runs for calls that lack
    them, with the same filter and the same reading (``shared.speech``).
    """
    options = silencedetect_options(settings.silence_threshold_db, settings.silence_min_duration)
    graph = "silencedetect=" + ":".join(f"{key}={value}" for key, value in options.items())
    try:
        done = subprocess.run(
            [settings.ffmpeg_binary, "-hide_banner", "-nostdin", "-nostats", "-i", str(path), "-af", graph, "-f", "null", "-"],
            capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT * 5,
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{path.name}: speech detection timed out") from exc
    if done.returncode != 0:
        raise MediaError(f"{path.name}: {summarise(done.stderr)}")
    silences = parse_silences(done.stderr.splitlines(), channels=channel + 1)[channel]
    return speech_intervals(silences, duration, min_speech=settings.speech_min_duration)


_font_warned = False


def resolve_font(settings: Settings) -> Path | None:
    """The font file for labels: LABEL_FONT, else fontconfig's sans, else None (no labels).

    A machine without fonts still renders videos; it only loses the labels.
    """
    global _font_warned
    configured = Path(settings.label_font) if settings.label_font else None
    if configured and configured.is_file():
        return configured
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "--format=%{file}", "sans:bold"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            found = ""
        if found and Path(found).is_file():
            return Path(found)
    if not _font_warned:
        log.warning("no font found (LABEL_FONT=%r, fontconfig has none): videos are rendered without labels", settings.label_font)
        _font_warned = True
    return None


LEGACY_GRAPH_FILE_OPTION = "-filter_complex_script"


@functools.lru_cache(maxsize=None)
def graph_file_option(binary: str) -> str:
    """The option with which this FFmpeg reads a complex filtergraph from a file.

    ``-filter_complex_script`` was deprecated for ``-/filter_complex`` (any
    option's value read from a file, which older releases reject) and later
    removed (the 9.0 build checked here has no such option). Debian 12 ships
    5.1, the service images' Debian 13 a 7.x, a static build anything newer:
    the binary's own help decides, once per process.
    """
    try:
        help_text = subprocess.run(
            [binary, "-hide_banner", "-h", "long"], capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return LEGACY_GRAPH_FILE_OPTION  # the render itself will report what is wrong with the binary
    return LEGACY_GRAPH_FILE_OPTION if LEGACY_GRAPH_FILE_OPTION in help_text else "-/filter_complex"


def ffmpeg_version(binary: str) -> str | None:
    """The version this FFmpeg reports (``7.1.5-0+deb13u1``, ``N-117000-gabcdef``), or None if it cannot say.

    Not cached: a bare name such as ``ffmpeg`` finds another build once PATH
    changes (the benchmark's ``--ffmpeg``).
    """
    try:
        line = subprocess.run(
            [binary, "-hide_banner", "-version"], capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT
        ).stdout.split("\n", 1)[0]
    except (OSError, subprocess.SubprocessError):
        return None
    words = line.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else None


_MAJOR = re.compile(r"n?(\d+)\.")


@functools.lru_cache(maxsize=None)
def threaded_cli(binary: str) -> bool:
    """Whether this FFmpeg's command line gives every decoder a thread of its own (7.0 and later).

    Then a decoder's own frame threads only add buffers: a call of 12 segments
    a side rendered in 474 MB with them and 362 MB without, 6 % faster, on
    Debian 13's 7.1 (the images'). On 5.1 the main thread decodes every input
    itself, and one thread per decoder made the same render 13 % slower.
    Git builds (``N-…``) count as current; an unrunnable binary as old.
    """
    version = ffmpeg_version(binary)
    if version is None:
        return False
    if version.startswith("N-"):
        return True
    found = _MAJOR.match(version)
    return found is not None and int(found[1]) >= 7
