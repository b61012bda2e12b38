"""ffprobe validation on real files: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import re

import pytest

from services.audio.probe import MONO, check, probe_recording
from shared.errors import PermanentError
from tests.support import media


def probe(path, tmp_path, max_seconds=7200):
    return probe_recording(path, ffprobe="ffprobe", max_seconds=max_seconds, workdir=tmp_path)


def test_stereo_mp3_is_accepted(tmp_path):
    info = probe(media.tone_call(tmp_path / "call.mp3", 3.0), tmp_path)
    assert (info.channels, info.sample_rate, info.codec, info.format) == (2, 8000, "mp3", "mp3")
    assert info.duration == pytest.approx(3.0, abs=0.3)


def test_wav_content_is_accepted_whatever_the_name(tmp_path):
    wav = media.tone_call(tmp_path / "call.wav", 2.0)
    disguised = tmp_path / "recording.mp3"  # the store's key always ends in .mp3
    disguised.write_bytes(wav.read_bytes())
    info = probe(disguised, tmp_path)
    assert (info.channels, info.codec, info.format) == (2, "pcm_s16le", "wav")
    assert info.duration == pytest.approx(2.0, abs=0.01)


def test_mono_says_how_to_fix_it(tmp_path):
    with pytest.raises(PermanentError, match=f"^{re.escape(MONO)}$"):
        probe(media.mono_file(tmp_path / "mono.mp3"), tmp_path)
    assert MONO.startswith("recording is mono")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "recording is empty"),
        (b"<html><body>Not Found</body></html>\n", "not an audio file"),
        (bytes(range(256)) * 64, "not an audio file"),
    ],
    ids=["zero-length", "html", "binary-junk"],
)
def test_bad_files(tmp_path, content, reason):
    path = tmp_path / "recording.mp3"
    path.write_bytes(content)
    with pytest.raises(PermanentError, match=reason):
        probe(path, tmp_path)


def test_video_without_audio(tmp_path):
    # Not opened at all: a recording is MP3, WAV, FLAC, Ogg or M4A (shared.ffmpeg.inputs), a video none of those.
    with pytest.raises(PermanentError, match=r"not an audio file: not MP3 or WAV or FLAC or Ogg or M4A \(it is MP4\)"):
        probe(media.color_video(tmp_path / "v.mp4", "red", size="64x64", duration=0.5), tmp_path)


def test_more_than_two_channels(tmp_path):
    path = tmp_path / "six.wav"
    media.ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=8000:d=0.5", "-ac", "6", str(path))
    with pytest.raises(PermanentError, match="recording has 6 channels: expected 2"):
        probe(path, tmp_path)


def test_too_long(tmp_path):
    with pytest.raises(PermanentError, match=r"recording is 4 s long, more than the 3 s allowed \(RECORDING_MAX_SECONDS\)"):
        probe(media.tone_call(tmp_path / "call.wav", 4.0), tmp_path, max_seconds=3)


def test_missing_file(tmp_path):
    with pytest.raises(PermanentError, match="missing"):
        probe(tmp_path / "nothing.mp3", tmp_path)


def test_unknown_duration_is_left_to_the_split():
    report = {"streams": [{"index": 1, "codec_type": "audio", "codec_name": "opus", "channels": 2, "sample_rate": "48000"}],
              "format": {"format_name": "ogg"}}
    info = check(report, max_seconds=10)
    assert (info.stream_index, info.duration, info.sample_rate) == (1, None, 48000)


def test_zero_duration_in_headers():
    report = {"streams": [{"codec_type": "audio", "channels": 2, "sample_rate": "8000", "duration": "0.000000"}]}
    with pytest.raises(PermanentError, match="duration is 0"):
        check(report, max_seconds=10)
