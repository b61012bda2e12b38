"""shared/ffmpeg/ssim.py: the jump at a cut, set beside the frames around it (real FFmpeg)."""

from __future__ import annotations

from pathlib import Path

from shared.ffmpeg import consecutive_ssim, seam_report
from shared.ffmpeg.ssim import parse_stats
from tests.support.media import ffmpeg

FPS = 25


def two_parts(path: Path, second: str) -> Path:
    """2 s of a slowly moving picture, then 2 s of ``second`` (a lavfi source) from frame 50."""
    first = "testsrc2=s=160x120:r=25:d=2"
    ffmpeg("-f", "lavfi", "-i", first, "-f", "lavfi", "-i", second, "-filter_complex", "[0:v][1:v]concat=n=2:v=1",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def test_a_hard_cut_is_a_visible_seam_and_a_continuing_picture_is_not(tmp_path):
    cut = two_parts(tmp_path / "cut.mp4", "color=c=red:s=160x120:r=25:d=2")
    (seam,) = seam_report(cut, [2.0], fps=FPS)
    assert not seam.invisible and seam.across < 0.7 < seam.around
    # The same picture going on (the second part continues the first's clock): no jump at 2 s.
    smooth = two_parts(tmp_path / "smooth.mp4", "testsrc2=s=160x120:r=25:d=4,trim=start=2,setpts=PTS-STARTPTS")
    (seam,) = seam_report(smooth, [2.0], fps=FPS)
    assert seam.invisible, seam


def test_consecutive_ssim_pairs_every_frame_with_the_next(tmp_path):
    cut = two_parts(tmp_path / "cut.mp4", "color=c=red:s=160x120:r=25:d=2")
    values = consecutive_ssim(cut, fps=FPS)
    assert len(values) == 4 * FPS - 1
    assert min(values) == values[49]  # frame 49 → 50, the cut
    assert values[-1] == 1.0  # a still picture
    # A region: the left half only; a stretch: 10 frames from 1.6 s, the cut their 10th pair.
    part = consecutive_ssim(cut, start=1.6, frames=11, fps=FPS, region=(0, 0, 80, 120))
    assert len(part) == 10 and min(part) == part[9]


def test_parse_stats():
    text = "n:1 Y:0.990000 U:0.99 V:0.99 All:0.991000 (20.45)\nn:2 Y:1 U:1 V:1 All:1.000000 (inf)\n"
    assert parse_stats(text) == [0.991, 1.0]
