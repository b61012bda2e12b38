"""What a finished call must look like, checked on the real objects with FFmpeg."""

from __future__ import annotations

import subprocess
from array import array
from dataclasses import dataclass
from pathlib import Path

from shared.models import STAGES, Call
from tests.support.media import dominant_hz, probe

__all__ = ["VideoFacts", "video_facts", "panel_colour", "channel_hz", "is_fal_navy", "assert_stage_timestamps"]


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    video_codec: str
    pixel_format: str
    audio_codec: str | None
    audio_channels: int
    duration: float


def video_facts(path: Path) -> VideoFacts:
    info = probe(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next((s for s in info["streams"] if s["codec_type"] == "audio"), None)
    return VideoFacts(
        width=int(video["width"]),
        height=int(video["height"]),
        video_codec=video["codec_name"],
        pixel_format=video.get("pix_fmt", ""),
        audio_codec=audio["codec_name"] if audio else None,
        audio_channels=int(audio["channels"]) if audio else 0,
        duration=float(info["format"]["duration"]),
    )


def panel_colour(path: Path, at: float, half: str, *, height_fraction: float = 0.2) -> tuple[int, int, int]:
    """Mean RGB of a 20×20 patch of the left or right panel, centred across, ``height_fraction`` down, at ``at`` s.

    The default is above the moving white box of the fake fal's video and below the label.
    """
    facts = video_facts(path)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout
    width, height = facts.width, facts.height
    panel = width // 2
    x0 = (0 if half == "left" else panel) + panel // 2 - 10
    y0 = int(height * height_fraction) - 10
    totals = [0, 0, 0]
    count = 0
    for y in range(y0, y0 + 20):
        row = raw[(y * width + x0) * 3 : (y * width + x0 + 20) * 3]
        for i in range(0, len(row), 3):
            for c in range(3):
                totals[c] += row[i + c]
            count += 1
    return tuple(t // count for t in totals)  # type: ignore[return-value]


def is_fal_navy(rgb: tuple[int, int, int]) -> bool:
    """The fake fal's video is navy (0, 0, 128): a panel showing it is dark blue in the middle."""
    r, g, b = rgb
    return b > 90 and r < 50 and g < 50


def channel_hz(path: Path, channel: int, start: float, end: float) -> int:
    """The strongest frequency of one channel of ``path`` between ``start`` and ``end`` (8 kHz decode)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-af", f"pan=mono|c0=c{channel},atrim=start={start}:end={end}",
         "-ar", "8000", "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout
    samples = array("h")
    samples.frombytes(raw)
    return dominant_hz(samples)


def assert_stage_timestamps(call: Call) -> None:
    """Every stage started and finished, in order, and the call's processing times are set."""
    previous = None
    for stage in STAGES:
        started, finished = getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at")
        assert started is not None and finished is not None, f"{stage}: started {started}, finished {finished}"
        assert started <= finished, f"{stage} finished before it started"
        if previous is not None:
            assert previous <= finished, f"{stage} finished before the stage before it"
        previous = finished
    assert call.video_processing_started_at is not None and call.video_processing_completed_at is not None
    assert call.video_processing_started_at <= call.video_processing_completed_at
    assert call.video_processing_duration is not None and call.video_processing_duration >= 0
