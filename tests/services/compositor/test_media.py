"""The highlight's fallback speech detection: what the compositor reads of a call that lacks its speech."""

from __future__ import annotations

import pytest

from services.compositor.media import detect_speech
from tests.support.media import tone_call

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
    (tmp_path / "any.mp3").write_bytes(b"ID3\x04\x00")  # an MP3 by its first bytes: the fake never reads it
    assert detect_speech(tmp_path / "any.mp3", settings, channel=1, duration=4.0) == [[2.5, 4.0]]


def test_sounds_shorter_than_speech_min_duration_are_not_speech(tmp_path, settings_env):
    """The same rule as the audio stage's: a click on the line is not someone speaking."""
    call = tone_call(tmp_path / "call.mp3", 6.0, ((0.5, 2.0), (3.0, 3.15)), CALLEE)
    assert len(detect_speech(call, settings_env(SPEECH_MIN_DURATION="0.1"), channel=0, duration=6.0)) == 2
    assert len(detect_speech(call, settings_env(SPEECH_MIN_DURATION="0.5"), channel=0, duration=6.0)) == 1
