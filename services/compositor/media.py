"""What the compositor reads of its inputs besides ffprobe's report: speech, when the call lacks it, and a font.

Every input is probed first (``shared.ffmpeg.probe_video``): a side video that
ffprobe cannot read is caught there, so that side falls back to a local panel
instead of failing the whole stitch.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from shared.ffmpeg import (
    PROBE_TIMEOUT,
    RECORDING,
    FFmpegFailed,
    FFmpegTimeout,
    InvalidMedia,
    input_args,
    parse_silences,
    run,
    silencedetect_options,
    speech_intervals,
    summarise,
)
from shared.settings import Settings

__all__ = ["detect_speech", "resolve_font"]

log = logging.getLogger("callreel.compositor")


def detect_speech(path: Path, settings: Settings, *, channel: int, duration: float) -> list[list[float]]:
    """Where ``channel`` of ``path`` is louder than SILENCE_THRESHOLD_DB: the highlight's fallback.

    The audio stage stores these intervals; this only runs for calls that lack
    them, with the same filter and the same reading (``shared.ffmpeg.speech``).
    """
    options = silencedetect_options(settings.silence_threshold_db, settings.silence_min_duration)
    graph = "silencedetect=" + ":".join(f"{key}={value}" for key, value in options.items())
    args = [settings.ffmpeg_binary, "-hide_banner", "-nostdin", "-nostats", *input_args(path, RECORDING), "-af", graph, "-f", "null", "-"]
    with tempfile.TemporaryDirectory(prefix="callreel-speech-") as folder:
        log_file = Path(folder) / "silencedetect.log"
        try:
            run(args, timeout=PROBE_TIMEOUT * 5, what="speech detection", stderr=log_file)
        except FFmpegTimeout as exc:
            raise InvalidMedia(f"{path.name}: speech detection timed out") from exc
        except FFmpegFailed as exc:
            raise InvalidMedia(f"{path.name}: {summarise(exc.stderr)}") from None
        with open(log_file, errors="replace") as lines:
            silences = parse_silences(lines, channels=channel + 1)[channel]
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
