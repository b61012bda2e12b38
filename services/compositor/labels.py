"""Each panel's label: a font that has its characters, at the largest size (up to the default) that fits the panel.

Names come from the host application in any script. drawtext draws with one
font file and no fallback, so a name in Chinese set in DejaVu would show as
boxes: the font is chosen per label, by fontconfig (``fc-list
:charset=…``, the fonts that have every character of the text), keeping
LABEL_FONT when it has them. When no installed font does, the panel shows the
deployment's label instead (CALLER_LABEL/CALLEE_LABEL) and the log says which
name could not be drawn: a visible, explained fallback rather than boxes.
Right-to-left names are ordered and joined by drawtext's own shaping
(FFmpeg built with libfribidi; ``text_shaping`` is on by default).

The size: drawtext cannot shrink text to a width, so the label is measured
with drawtext itself (one frame, one FFmpeg run: the same font, shaping and
rasteriser as the render) at a reference size, and the size is scaled down
until the box (text, its border and the margin either side) fits the panel.
A name too long even at LABEL_MIN_SIZE is cut, and ends in "…".
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
from pathlib import Path

from shared.ffmpeg import FFmpegError, run
from shared.settings import Settings

from .layout import RenderSpec, SideSpec

__all__ = ["LABEL_MIN_SIZE", "default_size", "margin", "border", "font_for", "measure", "fit_size", "fit_labels"]

log = logging.getLogger("callreel.compositor")

LABEL_MIN_SIZE = 12  # smaller is unreadable on a phone: a longer name is shortened with an ellipsis instead
REFERENCE_SIZE = 100  # the size a label is measured at: large enough that rounding is below a pixel at panel sizes
MEASURE_TIMEOUT = 30
FC_TIMEOUT = 10
# Glyph widths scale with the size almost but not exactly (hinting rounds each advance): a little slack.
SAFETY = 0.97


def default_size(panel_h: int) -> int:
    return max(12, panel_h // 20)


def margin(size: int) -> int:
    """Where the text starts from the panel's left (and top) edge."""
    return size // 2 + 8


def border(size: int) -> int:
    """The label box's padding around the text."""
    return max(4, size // 3)


def _fc_list(pattern: str) -> list[str]:
    if not shutil.which("fc-list"):
        return []
    try:
        found = subprocess.run(["fc-list", pattern, "file"], capture_output=True, text=True, timeout=FC_TIMEOUT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({line.split(":")[0].strip() for line in found.splitlines() if line.strip()})


def font_for(text: str, default: Path | None) -> Path | None:
    """A font that has every character of ``text``: ``default`` when it does, else fontconfig's pick (bold first)."""
    letters = sorted({ord(c) for c in text if not c.isspace() and ord(c) >= 0x20})
    if default is not None and all(c < 0x80 for c in letters):
        return default  # every font the labels could use has ASCII; no need to ask
    charset = " ".join(f"{c:x}" for c in letters)
    files = _fc_list(f":charset={charset}")
    if default is not None and str(default) in files:
        return default
    bold = _fc_list(f":charset={charset}:weight=bold")
    for file in bold + files:
        if Path(file).is_file():
            return Path(file)
    return None


_BBOX = re.compile(r"x1:(-?\d+) x2:(-?\d+)")


def measure(text_file: Path, font: Path, size: int, settings: Settings) -> int:
    """The width in pixels of the text in ``text_file`` drawn by drawtext with ``font`` at ``size``."""
    canvas_w, canvas_h = 40 * size, 2 * size
    graph = (
        f"drawtext=fontfile='{font}':textfile='{text_file}':expansion=none:fontsize={size}:fontcolor=white:x=0:y=0,bbox=min_val=16"
    )
    log_file = text_file.with_suffix(".measure.log")
    run(
        [settings.ffmpeg_binary, "-hide_banner", "-nostdin", "-f", "lavfi", "-i", f"color=c=black:s={canvas_w}x{canvas_h}:d=0.04",
         "-vf", graph, "-frames:v", "1", "-f", "null", "-"],
        timeout=MEASURE_TIMEOUT,
        what="label measure",
        stderr=log_file,
    )
    found = _BBOX.findall(log_file.read_text(errors="replace"))
    return int(found[-1][1]) + 1 if found else 0


def fit_size(reference_width: int, panel_w: int, largest: int) -> int:
    """The largest size up to ``largest`` at which a text ``reference_width`` px wide at REFERENCE_SIZE fits the panel.

    The box spans from ``margin - border`` to ``margin + width + border``; it
    fits when it keeps the same gap on the right, i.e. ``2 × margin + width ≤ panel_w``.
    """
    for size in range(largest, LABEL_MIN_SIZE - 1, -1):
        if _fits(reference_width, size, panel_w):
            return size
    return LABEL_MIN_SIZE


def _fit_side(side: SideSpec, fallback: str, spec: RenderSpec, settings: Settings) -> SideSpec:
    text = side.label.strip()
    if spec.font is None or not text:
        return side
    font = font_for(text, spec.font)
    if font is None and fallback.strip() and fallback.strip() != text:
        log.warning("no installed font has every character of the %s name %r: showing %r instead", side.side, text, fallback)
        text, font = fallback.strip(), font_for(fallback.strip(), spec.font)
    if font is None:
        log.warning("no installed font has every character of the %s label %r: no label", side.side, text)
        return dataclasses.replace(side, label="")
    panel = spec.placement.panel(side.side)
    largest = default_size(panel.h)
    text_file = spec.workdir / f"label-{side.side}.txt"
    text_file.write_text(text, encoding="utf-8")
    try:
        width = measure(text_file, font, REFERENCE_SIZE, settings)
        size = fit_size(width, panel.w, largest)
        text = _shorten(text, text_file, font, width, panel.w, settings)
    except FFmpegError as exc:
        log.warning("could not measure the %s label (%s): drawn at its default size", side.side, exc)
        size = largest
    return dataclasses.replace(side, label=text, label_font=font, label_size=size)


def _fits(width: int, size: int, panel_w: int) -> bool:
    return 2 * margin(size) + width * size / REFERENCE_SIZE / SAFETY <= panel_w


def _shorten(text: str, text_file: Path, font: Path, width: int, panel_w: int, settings: Settings) -> str:
    """``text``, or as much of it as fits at LABEL_MIN_SIZE followed by "…" (``text_file`` rewritten to match)."""
    for _ in range(8):  # each round cuts by the measured excess: two or three rounds in practice
        if _fits(width, LABEL_MIN_SIZE, panel_w) or len(text) <= 1:
            break
        room = (panel_w - 2 * margin(LABEL_MIN_SIZE)) * SAFETY * REFERENCE_SIZE / LABEL_MIN_SIZE
        keep = max(1, min(len(text.rstrip("…")) - 1, int(len(text) * room / width) - 1))
        text = text.rstrip("…")[:keep].rstrip() + "…"
        text_file.write_text(text, encoding="utf-8")
        width = measure(text_file, font, REFERENCE_SIZE, settings)
    return text


def fit_labels(spec: RenderSpec, settings: Settings, fallbacks: dict[str, str] | None = None) -> RenderSpec:
    """``spec`` with each side's label font and size chosen; ``fallbacks``: the label to show when a name cannot be drawn."""
    fallbacks = fallbacks or {"caller": settings.caller_label, "callee": settings.callee_label}
    return dataclasses.replace(
        spec,
        caller=_fit_side(spec.caller, fallbacks["caller"], spec, settings),
        callee=_fit_side(spec.callee, fallbacks["callee"], spec, settings),
    )
