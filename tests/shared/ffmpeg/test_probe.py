"""What ffprobe says of a file: a render is read for its picture and its sound at once."""

from __future__ import annotations

import subprocess

import pytest

from shared.ffmpeg import InvalidMedia, probe_rendered


def _clip(path, *, sound: bool) -> None:
    sources = ["-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=2"]
    if sound:
        sources += ["-f", "lavfi", "-i", "sine=d=2"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *sources, "-c:v", "libx264", "-preset", "ultrafast", "-shortest", str(path)], check=True)


def test_a_render_is_read_for_its_picture_and_its_sound_at_once(tmp_path, settings_env):
    _clip(tmp_path / "both.mp4", sound=True)
    video, sound = probe_rendered(tmp_path / "both.mp4", settings_env())
    assert (video.width, video.height, video.fps) == (160, 120, 25)
    assert video.duration == pytest.approx(2.0, abs=0.1) and sound == pytest.approx(2.0, abs=0.1)


def test_a_render_without_sound_is_not_a_finished_video(tmp_path, settings_env):
    _clip(tmp_path / "mute.mp4", sound=False)
    with pytest.raises(InvalidMedia, match="no audio stream"):
        probe_rendered(tmp_path / "mute.mp4", settings_env())
