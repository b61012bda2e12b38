"""Where each side goes in the frame, for each ``VIDEO_LAYOUT``: one table, pure data and arithmetic.

=============  ==================  =========================================  ======  ==================================
layout         frame               panels (caller, callee)                    fit     captions (a later step draws them)
=============  ==================  =========================================  ======  ==================================
side-by-side   2 panels × 1        side by side; a panel is the side videos'  pad     over each panel's lower part
               (640×480 box)       shape fitted in PANEL_WIDTH×PANEL_HEIGHT
landscape      1280×720 (720p) or  side by side, each half the frame          crop    over each panel's lower part
               1920×1080 (1080p)
square         1080×1080           side by side, 540×720 (3:4), centred       crop    in the band under each panel
                                   vertically between two background bands
vertical       1080×1920           caller on top, callee below, 1080×960      crop    over each panel's lower part
=============  ==================  =========================================  ======  ==================================

Every layout puts its label at the top left of the panel and its captions
low in the panel (or under it), so a caption never covers a label. "Over the
lower part" is the band from 72 % to 92 % of the panel's height, inset by 5 %
either side: under a talking head's chin, where subtitles usually sit. A local
panel draws its waveform across its bottom fifth, under the same band: the
captions' box will cover part of it, the waveform being the less readable of
the two.

Why crop outside side-by-side: fal's talking heads are square (or close to
it) and centred on the face, so filling a 640×720 or 1080×960 panel costs a
tenth of the picture at its edges and no face, where padding would frame each
face in bars (docs/layouts.md shows both). ``square`` keeps 3:4 panels rather
than two 540×1080 strips: a square face cropped to 1:2 loses half its width,
and the two bands left over are where the captions go.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import VIDEO_LAYOUTS

__all__ = ["LAYOUTS", "RESOLUTIONS", "PAD", "CROP", "BACKGROUND", "Rect", "Layout", "layout", "side_by_side", "cover", "crop_origin"]

LAYOUTS = VIDEO_LAYOUTS  # the table below has a row for each
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
PAD, CROP = "pad", "crop"  # fit modes: the whole picture with bars, or the panel filled and the picture's edges cut
BACKGROUND = "0x111827"  # the frame around panels that do not fill it (square's bands)

# Without a face box, a crop takes this share of the rows it removes from the
# top and the rest from the bottom: a talking head's eyes sit above the middle
# of its frame, and a crop into the chest looks natural where one into the top
# of the head does not.
TOP_SHARE = 0.4
# The caption band, as fractions of a panel's height (see the module's docstring).
CAPTION_TOP, CAPTION_BOTTOM = 0.72, 0.92


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Layout:
    """One frame: its size, each side's panel and caption region (frame pixels), how pictures fill a panel."""

    name: str
    width: int
    height: int
    caller: Rect
    callee: Rect
    fit: str  # PAD or CROP
    caller_caption: Rect
    callee_caption: Rect
    label: str = "top-left"  # the label's corner inside its panel

    def panel(self, side: str) -> Rect:
        return self.caller if side == "caller" else self.callee

    def caption(self, side: str) -> Rect:
        return self.caller_caption if side == "caller" else self.callee_caption


def _even(value: float) -> int:
    return int(round(value / 2)) * 2


def _over_lower_part(panel: Rect) -> Rect:
    top, bottom = _even(panel.h * CAPTION_TOP), _even(panel.h * CAPTION_BOTTOM)
    inset = _even(panel.w * 0.05)
    return Rect(panel.x + inset, panel.y + top, panel.w - 2 * inset, bottom - top)


def _band_under(panel: Rect, frame_height: int) -> Rect:
    return Rect(panel.x, panel.y + panel.h, panel.w, frame_height - panel.y - panel.h)


# The table: frame size (None: from the panel box or VIDEO_RESOLUTION), then
# each panel as fractions (x, y, w, h) of the frame, the fit, and where captions go.
_TABLE: dict[str, tuple[tuple[int, int] | None, tuple[float, ...], tuple[float, ...], str, str]] = {
    "side-by-side": (None, (0, 0, 1 / 2, 1), (1 / 2, 0, 1 / 2, 1), PAD, "over"),
    "landscape": (None, (0, 0, 1 / 2, 1), (1 / 2, 0, 1 / 2, 1), CROP, "over"),
    "square": ((1080, 1080), (0, 1 / 6, 1 / 2, 2 / 3), (1 / 2, 1 / 6, 1 / 2, 2 / 3), CROP, "under"),
    "vertical": ((1080, 1920), (0, 0, 1, 1 / 2), (0, 1 / 2, 1, 1 / 2), CROP, "over"),
}


def layout(name: str, *, panel: tuple[int, int] = (640, 480), resolution: str = "720p") -> Layout:
    """The layout called ``name``; ``panel`` is side-by-side's panel size, ``resolution`` landscape's frame."""
    if name not in _TABLE:
        raise ValueError(f"unknown layout {name!r}: one of {', '.join(LAYOUTS)}")
    size, caller, callee, fit, captions = _TABLE[name]
    if name == "side-by-side":
        size = (2 * panel[0], panel[1])
    elif size is None:
        size = RESOLUTIONS[resolution]
    width, height = size
    rects = [Rect(_even(x * width), _even(y * height), _even(w * width), _even(h * height)) for x, y, w, h in (caller, callee)]
    place = _over_lower_part if captions == "over" else (lambda r: _band_under(r, height))
    return Layout(name, width, height, rects[0], rects[1], fit, place(rects[0]), place(rects[1]))


def side_by_side(width: int, height: int) -> Layout:
    """The original plan's frame: two ``width``×``height`` panels side by side."""
    return layout("side-by-side", panel=(width, height))


def cover(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The smallest even size with ``width:height``'s shape that covers the box (never stretched)."""
    scale = max(box_width / width, box_height / height)
    return max(box_width, _even(width * scale)), max(box_height, _even(height * scale))


def crop_origin(scaled: tuple[int, int], box: tuple[int, int], focus: tuple[float, float] | None = None) -> tuple[int, int]:
    """Where a ``box`` crop of a picture scaled to ``scaled`` starts: on ``focus`` (the face's centre, as fractions), clamped.

    Without a focus: centred across, and ``TOP_SHARE`` of the excess height cut from the top.
    """
    excess_x, excess_y = scaled[0] - box[0], scaled[1] - box[1]
    if focus is None:
        x, y = excess_x / 2, excess_y * TOP_SHARE
    else:
        x, y = focus[0] * scaled[0] - box[0] / 2, focus[1] * scaled[1] - box[1] / 2
    return min(excess_x, max(0, int(x))) // 2 * 2, min(excess_y, max(0, int(y))) // 2 * 2
