"""What the compositor reads of its files: a render's picture and sound, and the highlight's fallback speech detection."""

from __future__ import annotations

import subprocess

import pytest

from services.compositor.media import MediaError, detect_speech, probe_rendered, threaded_cli
from tests.support.media import fake_binary, tone_call

CALLER = ((0.5, 2.0), (3.0, 4.5))
CALLEE = ((2.2, 2.8),)


def test_each_channel_speaks_where_its_tone_is(tmp_path, settings_env):
    settings = settings_env()
    call = tone_call(tmp_path / "call.mp3", 6.0, CALLER, CALLEE)
    for channel, expected in ((0, CALLER), (1, CALLEE)):
        found = detect_speech(call, settings, channel=channel, duration=6.0)
        assert len(found) == len(expected), found
        for (start, end), (want_start, want_end) in zip(found, expected):
            assert start == pytest.approx(want_start, abs=0.2) and end == pytest.approx(want_end, abs=0.2)


def test_times_ffmpeg_prints_in_exponent_form(tmp_path, settings_env):
    """FFmpeg prints times with %g: a silence starting a few samples in reads "5e-05", not 5."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        "echo '[silencedetect @ 0x1] channel: 1 | silence_start: 5e-05' >&2\n"
        "echo '[silencedetect @ 0x1] channel: 1 | silence_end: 2.5 | silence_duration: 2.49995' >&2\n"
    )
    fake.chmod(0o755)
    settings = settings_env(FFMPEG_BINARY=str(fake))
    assert detect_speech(tmp_path / "any.mp3", settings, channel=1, duration=4.0) == [[2.5, 4.0]]


def test_sounds_shorter_than_speech_min_duration_are_not_speech(tmp_path, settings_env):
    """The same rule as the audio stage's: a click on the line is not someone speaking."""
    call = tone_call(tmp_path / "call.mp3", 6.0, ((0.5, 2.0), (3.0, 3.15)), CALLEE)
    assert len(detect_speech(call, settings_env(SPEECH_MIN_DURATION="0.1"), channel=0, duration=6.0)) == 2
    assert len(detect_speech(call, settings_env(SPEECH_MIN_DURATION="0.5"), channel=0, duration=6.0)) == 1


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
    with pytest.raises(MediaError, match="no audio stream"):
        probe_rendered(tmp_path / "mute.mp4", settings_env())


@pytest.mark.parametrize(
    ("first_line", "threaded"),
    [
        ("ffmpeg version 7.1.5-0+deb13u1 Copyright (c) 2000-2026 the FFmpeg developers", True),  # the images'
        ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers", False),  # Debian 12
        ("ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright (c) 2000-2026", True),  # static builds
        ("ffmpeg version 6.1.1-3ubuntu5 Copyright (c) 2000-2023", False),
        ("ffmpeg version N-117000-gabcdef Copyright (c) 2000-2026", True),  # a git build
        ("something else entirely", False),
    ],
)
def test_a_threaded_command_line_is_told_by_the_binarys_version(tmp_path, first_line, threaded):
    assert threaded_cli(fake_binary(tmp_path / "ffmpeg", first_line)) is threaded


def test_a_current_static_ffmpeg_is_threaded_and_a_missing_one_is_not(tmp_path):
    import imageio_ffmpeg

    assert threaded_cli(imageio_ffmpeg.get_ffmpeg_exe()) is True
    assert threaded_cli(str(tmp_path / "missing")) is False
