"""How much the picture jumps between two frames: FFmpeg's ``ssim`` filter, for seams and joins.

A long side is generated in segments (docs/generation.md) and a long call is
rendered in chunks (docs/compositor.md); both meet at a cut. A cut is
invisible when the change from the last frame before it to the first after
it is no larger than the change between two consecutive frames where nothing
is cut. :func:`consecutive_ssim` measures the SSIM of every frame against the
next one over a stretch of a video, in one FFmpeg run; :func:`seam_report`
does so around each cut and sets the cut's SSIM beside the least SSIM of the
frames around it (1.0 is no change at all; the lower, the larger the jump).

The benchmark prints these figures and the tests assert them
(tests/shared/ffmpeg/test_ssim.py, the compositor's chunk tests).
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .inputs import VIDEO, input_args
from .run import run

__all__ = ["Seam", "consecutive_ssim", "parse_stats", "seam_report", "SSIM_TIMEOUT"]

SSIM_TIMEOUT = 300
# Frames either side of a cut whose consecutive SSIM is the reference.
WINDOW = 8
_LINE = re.compile(r"n:(\d+) .*All:([0-9.]+|inf)")


@dataclass(frozen=True)
class Seam:
    """One cut: when it is, the SSIM across it, and the least SSIM between consecutive frames around it."""

    at: float  # seconds: the first frame after the cut
    across: float  # SSIM(last frame before, first frame after)
    around: float  # min SSIM(frame n, frame n+1) for the WINDOW frames either side, the cut excluded

    @property
    def invisible(self) -> bool:
        """The cut changes the picture no more than the frames around it change from one to the next."""
        return self.across >= self.around


def parse_stats(text: str) -> list[float]:
    """The ssim filter's stats file: the ``All`` SSIM of each frame pair, in order."""
    values = []
    for match in _LINE.finditer(text):
        raw = match.group(2)
        values.append(1.0 if raw == "inf" else float(raw))
    return values


def consecutive_ssim(
    video: Path,
    *,
    start: float = 0.0,
    frames: int | None = None,
    fps: float,
    region: tuple[int, int, int, int] | None = None,
    binary: str = "ffmpeg",
    timeout: float = SSIM_TIMEOUT,
) -> list[float]:
    """SSIM of frame n against frame n+1, for the frames from ``start`` (seconds) on (``frames`` of them, or to the end).

    ``region`` (x, y, w, h): compare only that part of the picture (one panel).
    Element ``i`` compares the ``i``-th frame read with the next.
    """
    crop = f"crop={region[2]}:{region[3]}:{region[0]}:{region[1]}," if region else ""
    limit = f"trim=end_frame={frames}," if frames else ""
    # Two copies of the same frames, the second one frame ahead, both counted 0, 1, 2…: the filter pairs n with n+1.
    graph = (
        f"[0:v]{crop}{limit}settb=1/{fps:g},setpts=N,split[a][b];"
        "[b]trim=start_frame=1,setpts=N[next];"
        "[a][next]ssim=stats_file={stats}:shortest=1"
    )
    with tempfile.TemporaryDirectory(prefix="callreel-ssim-") as folder:
        stats = Path(folder) / "ssim.log"
        args = [binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
        if start > 0:
            args += ["-ss", f"{start:.6f}"]
        args += [*input_args(video, VIDEO), "-filter_complex", graph.format(stats=stats), "-an", "-f", "null", "-"]
        run(args, timeout=timeout, what=f"ssim of {video.name}")
        return parse_stats(stats.read_text(errors="replace")) if stats.exists() else []


def seam_report(
    video: Path,
    cuts: Sequence[float],
    *,
    fps: float,
    region: tuple[int, int, int, int] | None = None,
    binary: str = "ffmpeg",
) -> list[Seam]:
    """Each cut (seconds: where the new part begins) measured against the frames around it."""
    seams = []
    for at in cuts:
        cut = math.floor(at * fps + 0.5)  # the first frame after the cut, as the compositor counts frames
        first = max(0, cut - WINDOW)
        pairs = consecutive_ssim(video, start=first / fps, frames=2 * WINDOW + 1, fps=fps, region=region, binary=binary)
        if cut - first - 1 >= len(pairs) or cut - first < 1:
            continue  # a cut at the very start or end has no frames on one side
        across = pairs[cut - first - 1]
        others = [v for i, v in enumerate(pairs) if i != cut - first - 1]
        seams.append(Seam(at=cut / fps, across=across, around=min(others) if others else 1.0))
    return seams
