"""What ffprobe says of a file: its report, and a render read for its picture and its sound at once."""

from __future__ import annotations

import subprocess

import pytest

from shared.ffmpeg import FFmpegFailed, InvalidMedia, probe, probe_rendered
from tests.support.media import fake_binary


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


def test_a_report_that_is_not_json_is_invalid_media(tmp_path):
    _clip(tmp_path / "any.mp4", sound=True)
    with pytest.raises(InvalidMedia, match="any.mp4: ffprobe output unreadable"):
        probe(tmp_path / "any.mp4", ffprobe=fake_binary(tmp_path / "ffprobe", "not json"))


def test_the_report_is_kept_in_the_call_folder_when_given_one(tmp_path):
    _clip(tmp_path / "both.mp4", sound=True)
    report = probe(tmp_path / "both.mp4", ffprobe="ffprobe", workdir=tmp_path)
    assert {s["codec_type"] for s in report["streams"]} == {"video", "audio"}
    assert (tmp_path / "ffprobe.json").stat().st_size > 0


def test_a_file_ffprobe_cannot_read_fails_with_its_words(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"not a video at all" * 10)  # an MP4 by its first bytes only
    with pytest.raises(FFmpegFailed) as raised:
        probe(tmp_path / "junk.mp4", ffprobe="ffprobe")
    assert "Invalid data" in raised.value.detail or "moov atom not found" in raised.value.detail, raised.value.detail


def test_a_file_of_no_known_format_is_never_opened(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(InvalidMedia, match=r"junk.mp4: not MP3 or WAV or FLAC or Ogg or M4A or MP4 or PNG or JPEG or WebP \(its content is none of those\)"):
        probe(tmp_path / "junk.mp4", ffprobe=fake_binary(tmp_path / "ffprobe", "{}"))
