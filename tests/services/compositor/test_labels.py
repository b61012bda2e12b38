"""Labels: a font that has the name's characters, at a size that fits the panel, checked on rendered pixels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from services.compositor.composer import render_spec
from services.compositor.graph import build_command
from services.compositor.labels import LABEL_MIN_SIZE, border, default_size, fit_labels, fit_size, font_for, margin
from services.compositor.layout import Clip, SideSpec
from shared.ffmpeg import probe_video
from shared.settings import load_settings
from tests.support.media import ffmpeg, frame_at, near, tone_call

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
RED, WHITE = (255, 0, 0), (255, 255, 255)
LONG = "Maximilian Alexander von Hohenzollern-Sigmaringen"
LONGER = "Maximilian Alexander von Hohenzollern-Sigmaringen, Head of Customer Success EMEA and APAC"


def test_fonts_are_chosen_by_the_characters_of_the_name():
    assert font_for("Ada Lovelace", FONT) == FONT
    assert font_for("Renée Ørsted", FONT) == FONT  # DejaVu has Latin-1 and beyond
    assert font_for("דוד כהן", FONT) == FONT and font_for("محمد علي", FONT) == FONT  # and Hebrew, and Arabic
    cjk = font_for("王小明", FONT)
    assert cjk is not None and cjk != FONT and cjk.is_file()
    assert font_for("\U00010000\U00010001", FONT) is None  # Linear B: no installed font has it


def test_the_size_is_the_largest_that_keeps_the_box_inside_the_panel():
    assert fit_size(0, 480, 24) == 24  # short text: the default size
    # 2000 px at size 100 is 20 px a point: at 21, 2 × 18 + 420 (+3 % slack) = 469 fits 480; at 22, 2 × 19 + 440 (+3 %) does not.
    assert fit_size(2000, 480, 24) == 21
    assert fit_size(100_000, 480, 24) == LABEL_MIN_SIZE


def _render(tmp_path: Path, caller_label: str, callee_label: str = "Customer"):
    settings = replace(load_settings({}), video_fps=10, video_preset="ultrafast")
    recording = tone_call(tmp_path / "call.mp3", 1.0, ((0.2, 0.8),), ())
    red = tmp_path / "red.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=512x512:r=10:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(red))
    blue = tmp_path / "blue.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=512x512:r=10:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(blue))
    caller = SideSpec("caller", caller_label, None, clips=(Clip(red, 0.0, 1.0, probe_video(red, settings)),))
    callee = SideSpec("callee", callee_label, None, clips=(Clip(blue, 0.0, 1.0, probe_video(blue, settings)),))
    workdir = tmp_path / "work"
    workdir.mkdir()
    spec = fit_labels(render_spec(settings, recording, 1.0, caller, callee, workdir, font=FONT), settings)
    output = tmp_path / "out.mp4"
    ffmpeg(*build_command(spec, output)[1:])
    return frame_at(output, 0.5), spec


@pytest.mark.parametrize("name", [LONG, LONGER])
def test_a_long_name_shrinks_so_its_box_ends_inside_the_panel(tmp_path, name):
    frame, spec = _render(tmp_path, name)
    panel = spec.placement.caller
    size = spec.caller.label_size
    assert size is not None and LABEL_MIN_SIZE <= size < default_size(panel.h)
    band = range(margin(size), margin(size) + size)  # the text's rows
    # Every pixel of the label's rows that is not the red picture (the box, the text) lies left of the panel's edge
    # less the box's left gap: the box ends inside the panel, with the same gap on either side.
    covered = [x for y in band for x in range(panel.x, panel.x + panel.w - 2) if not near(frame.pixel(x, y), RED)]
    whites = [x for y in band for x in range(panel.x, panel.x + panel.w) if near(frame.pixel(x, y), WHITE, 60)]
    gap = margin(size) - border(size)
    assert covered and max(covered) <= panel.x + panel.w - gap  # (the last columns: yuv420p blends them with the next panel)
    assert near(frame.pixel(panel.x + panel.w - 2, margin(size) + size // 2), RED)
    # The whole name is there: its text runs most of the panel's width, not cut after a few letters.
    assert max(whites) - min(whites) > panel.w * 0.75
    # Too long even at the smallest size: cut, and it says so.
    assert spec.caller.label == name if name == LONG else spec.caller.label.endswith("…") and name.startswith(spec.caller.label[:-1])


def test_a_short_name_keeps_the_default_size_and_a_cjk_name_gets_its_font(tmp_path):
    frame, spec = _render(tmp_path, "Ada", "王小明")
    assert spec.caller.label_size == default_size(spec.placement.caller.h)
    assert spec.callee.label_font is not None and spec.callee.label_font != FONT
    assert spec.callee.label == "王小明"


def test_a_name_no_font_can_draw_falls_back_to_the_deployments_label(tmp_path, caplog):
    settings = replace(load_settings({}), audio_mix="recording")
    side = SideSpec("caller", "\U00010000\U00010001", None)
    spec = render_spec(settings, tmp_path / "none.mp3", 1.0, side, SideSpec("callee", "Bob", None), tmp_path, font=FONT)
    fitted = fit_labels(spec, settings)
    assert fitted.caller.label == settings.caller_label
    assert "no installed font has every character" in caplog.text


@pytest.mark.parametrize("name", ["דוד כהן", "محمد علي"])
def test_right_to_left_names_render(tmp_path, name):
    frame, spec = _render(tmp_path, name)
    panel = spec.placement.caller
    size = spec.caller.label_size
    whites = [x for y in range(margin(size), margin(size) + size) for x in range(panel.x, panel.x + panel.w) if near(frame.pixel(x, y), WHITE, 60)]
    assert len(whites) > 30


def test_compose_uses_the_calls_own_layout_name_and_avatar(calls, s3, tmp_path):
    from services.compositor.composer import compose_call
    from shared import keys
    from shared.avatars import store_avatar
    from shared.models import Call
    from shared.settings import get_settings
    from tests.support.media import probe

    call = calls.call(duration=2.0, caller_speech=((0.2, 1.0),), callee_speech=((1.2, 1.8),), caller_name="王小明", video_layout="vertical")
    image = tmp_path / "face.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=400x400", "-frames:v", "1", str(image))
    Call.update(callee_avatar_url=store_avatar(call.id, "callee", image.read_bytes(), get_settings(), s3)).where(Call.id == call.id).execute()
    outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)
    assert outcome.status == "completed", outcome.reasons
    video = tmp_path / "out.mp4"
    s3.download_file(keys.video_key(call.id), video)
    stream = next(s for s in probe(video)["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == (1080, 1920)  # the call's layout, not VIDEO_LAYOUT's side-by-side
    frame = frame_at(video, 1.0)
    assert near(frame.pixel(540, 960 + 480), RED)  # the callee's panel (below) shows the call's own avatar
    assert not near(frame.pixel(540, 480), RED)  # the caller's the shipped one
    size = default_size(960)
    whites = [x for y in range(margin(size), margin(size) + size) for x in range(0, 400) if near(frame.pixel(x, y), WHITE, 60)]
    assert len(whites) > 50  # the CJK name is drawn (in a font that has it)
