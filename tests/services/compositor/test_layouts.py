"""Each VIDEO_LAYOUT: the table's geometry, and real renders checked by pixels.

The side videos are solid colours without any white (red caller, blue
callee), so white pixels in a frame can only be the labels, and a sampled
pixel tells which side a panel shows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from services.compositor import Clip, SideSpec, render_command
from services.compositor.layouts import LAYOUTS, CROP, PAD, Rect, cover, crop_origin, layout
from shared.assets import avatar_path
from shared.ffmpeg import probe_video
from shared.settings import SettingsError, load_settings
from tests.support.media import ffmpeg, frame_at, near, probe, tone_call

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
CALLEE_FACE = (200, 150, 120)  # the shipped callee avatar's centre
HIGHLIGHT = (34, 197, 94)
BACKGROUND = (17, 24, 39)  # 0x111827
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

SIZES = {
    ("side-by-side", "720p"): (960, 480),  # two 480×480 panels: the 512×512 sources' shape
    ("landscape", "720p"): (1280, 720),
    ("landscape", "1080p"): (1920, 1080),
    ("square", "720p"): (1080, 1080),
    ("vertical", "720p"): (1080, 1920),
}


def _inside(inner: Rect, outer: Rect) -> bool:
    return outer.x <= inner.x and outer.y <= inner.y and inner.x + inner.w <= outer.x + outer.w and inner.y + inner.h <= outer.y + outer.h


def _overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def _label_zone(panel: Rect) -> Rect:
    """Where a label may be: the top left of its panel (a fifth of its height, three quarters of its width)."""
    return Rect(panel.x, panel.y, panel.w * 3 // 4, panel.h // 5)


# -- the table ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "resolution"), list(SIZES))
def test_each_layout_has_its_size_and_panels_inside_the_frame_that_never_overlap(name, resolution):
    placed = layout(name, panel=(480, 480), resolution=resolution)
    frame = Rect(0, 0, placed.width, placed.height)
    assert (placed.width, placed.height) == SIZES[name, resolution]
    assert all(_inside(placed.panel(side), frame) for side in ("caller", "callee"))
    assert not _overlap(placed.caller, placed.callee)
    assert all(v % 2 == 0 for side in ("caller", "callee") for v in vars(placed.panel(side)).values())  # yuv420p
    for side in ("caller", "callee"):
        caption = placed.caption(side)
        assert _inside(caption, frame) and caption.w > 0 and caption.h > 0
        # Captions never cover a label, their own side's or the other's.
        assert not any(_overlap(caption, _label_zone(placed.panel(s))) for s in ("caller", "callee"))
        # A caption belongs to its panel: inside it, or in the band right under it.
        panel = placed.panel(side)
        assert caption.x >= panel.x and caption.x + caption.w <= panel.x + panel.w and caption.y >= panel.y


def test_where_the_caller_goes_and_how_pictures_fill_the_panels():
    assert layout("side-by-side", panel=(640, 480)).caller == Rect(0, 0, 640, 480)
    assert layout("side-by-side", panel=(640, 480)).callee == Rect(640, 0, 640, 480)
    assert layout("landscape").caller.x < layout("landscape").callee.x
    vertical = layout("vertical")
    assert (vertical.caller, vertical.callee) == (Rect(0, 0, 1080, 960), Rect(0, 960, 1080, 960))  # caller on top
    square = layout("square")
    assert (square.caller, square.callee) == (Rect(0, 180, 540, 720), Rect(540, 180, 540, 720))
    assert layout("side-by-side").fit == PAD and {layout(n).fit for n in LAYOUTS[1:]} == {CROP}


def test_an_unknown_layout_is_refused_by_the_table_and_by_the_settings():
    with pytest.raises(ValueError, match="unknown layout 'diagonal'"):
        layout("diagonal")
    with pytest.raises(SettingsError) as failed:
        load_settings({"VIDEO_LAYOUT": "diagonal", "VIDEO_RESOLUTION": "4k"})
    assert len(failed.value.problems) == 2 and "VIDEO_LAYOUT='diagonal' must be one of" in failed.value.problems[0]
    assert load_settings({"VIDEO_LAYOUT": "landscape", "VIDEO_RESOLUTION": "1080p"}).video_resolution == "1080p"
    assert load_settings({}).video_layout == "side-by-side"


def test_a_crop_covers_the_panel_and_centres_on_the_face_or_leans_up_without_one():
    assert cover(512, 512, 1080, 960) == (1080, 1080)
    assert cover(1280, 720, 540, 720) == (1280, 720)
    # No face box: centred across, 40 % of the cut rows from the top (the eyes sit above the middle).
    assert crop_origin((1080, 1080), (1080, 960)) == (0, 48)
    assert crop_origin((1280, 720), (540, 720)) == (370, 0)
    # A face box: centred on it, never past the picture's edge.
    assert crop_origin((1280, 720), (540, 720), focus=(0.3, 0.5)) == (114, 0)
    assert crop_origin((1280, 720), (540, 720), focus=(0.95, 0.5)) == (740, 0)
    assert crop_origin((1080, 1080), (1080, 960), focus=(0.5, 0.1)) == (0, 0)


# -- renders --------------------------------------------------------------------


def _solid(path: Path, colour: str, size: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"color=c={colour}:s={size}:r=10:d=3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def _render(tmp_path: Path, name: str, resolution: str = "720p", *, local_callee: bool = False, size: str = "512x512") -> tuple[Path, object]:
    settings = replace(load_settings({}), video_layout=name, video_resolution=resolution, video_fps=10, video_preset="ultrafast")
    recording = tone_call(tmp_path / "call.mp3", 3.0, ((0.5, 2.5),), ((2.6, 2.9),))
    clip = lambda path, colour: Clip(path, 0.0, 3.0, probe_video(_solid(path, colour, size), settings))  # noqa: E731
    caller = SideSpec("caller", "AI agent", avatar_path("caller"), clips=(clip(tmp_path / "red.mp4", "red"),), speech=((0.5, 2.5),))
    if local_callee:
        callee = SideSpec("callee", "Customer", avatar_path("callee"), audio=recording, audio_channel=1, speech=((2.6, 2.9),))
    else:
        callee = SideSpec("callee", "Customer", avatar_path("callee"), clips=(clip(tmp_path / "blue.mp4", "blue"),), speech=((2.6, 2.9),))
    output, workdir = tmp_path / "out.mp4", tmp_path / "work"
    workdir.mkdir()
    ffmpeg(*render_command(settings, recording, 3.0, caller, callee, output, workdir, font=FONT)[1:])
    from services.compositor.composer import render_spec

    return output, render_spec(settings, recording, 3.0, caller, callee, workdir, font=FONT).placement


def _centre(rect: Rect) -> tuple[int, int]:
    return rect.x + rect.w // 2, rect.y + rect.h // 2


@pytest.mark.parametrize(("name", "resolution"), list(SIZES))
def test_a_render_has_the_layouts_size_the_caller_where_it_says_and_labels_inside_their_panels(tmp_path, name, resolution):
    video, placed = _render(tmp_path, name, resolution)

    v = next(s for s in probe(video)["streams"] if s["codec_type"] == "video")
    assert (v["width"], v["height"]) == SIZES[name, resolution]
    frame = frame_at(video, 1.5)
    assert near(frame.pixel(*_centre(placed.caller)), RED) and near(frame.pixel(*_centre(placed.callee)), BLUE)
    # Square sources fill every layout's panels, no bars: cropped, or (side-by-side) panels of their shape.
    inset = max(4, placed.callee.h // 80) + 4
    for x, y in ((placed.callee.x + inset, placed.callee.y + placed.callee.h - inset), (placed.callee.x + placed.callee.w - inset, placed.callee.y + inset)):
        assert near(frame.pixel(x, y), BLUE), (x, y, frame.pixel(x, y))
    if name == "square":
        assert near(frame.pixel(540, 90), BACKGROUND) and near(frame.pixel(540, 990), BACKGROUND)
    # The labels: white text in each panel's top left, and nowhere else.
    step = 2
    whites = [(x, y) for y in range(0, frame.height, step) for x in range(0, frame.width, step) if near(frame.pixel(x, y), WHITE)]
    for side in ("caller", "callee"):
        zone = _label_zone(placed.panel(side))
        assert sum(1 for x, y in whites if _inside(Rect(x, y, 1, 1), zone)) > 40, side
    assert all(any(_inside(Rect(x, y, 1, 1), _label_zone(placed.panel(s))) for s in ("caller", "callee")) for x, y in whites)


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_highlight_lights_the_callers_panel_while_it_speaks_and_local_panels_work(tmp_path, name):
    video, placed = _render(tmp_path, name, local_callee=True)

    talking, silent = frame_at(video, 1.5), frame_at(video, 2.75)
    caller, callee = placed.caller, placed.callee
    edge = (caller.x + 1, caller.y + caller.h // 2)  # the caller panel's left edge: inside it
    assert near(talking.pixel(*edge), HIGHLIGHT) and not near(silent.pixel(*edge), HIGHLIGHT)
    assert not near(talking.pixel(callee.x + callee.w - 2, callee.y + callee.h // 2), HIGHLIGHT)
    if caller.y > 0:  # the border stays inside the panel: the band above it is background
        assert near(talking.pixel(caller.x + caller.w // 2, caller.y - 3), BACKGROUND)
    # The callee's local panel: its avatar, cropped or fitted, fills its place; the caller's video is beside it.
    assert near(talking.pixel(*_centre(callee)), CALLEE_FACE) and near(talking.pixel(*_centre(caller)), RED)
