"""Files from outside are opened as one format, known by their first bytes, through the file protocol only."""

from __future__ import annotations

import subprocess

import pytest

from shared.ffmpeg import IMAGE, RECORDING, VIDEO, InvalidMedia, input_args, probe, probe_video, sniff
from shared.settings import Settings
from tests.support import media


def test_each_kind_is_known_by_its_first_bytes(tmp_path):
    assert sniff(media.tone_call(tmp_path / "a.mp3", 1.0)) == "mp3"
    assert sniff(media.tone_call(tmp_path / "a.wav", 1.0)) == "wav"
    assert sniff(media.color_video(tmp_path / "a.mp4", "red", size="64x64", duration=0.5)) == "mov"
    for suffix, name in (("png", "png_pipe"), ("jpg", "jpeg_pipe"), ("webp", "webp_pipe")):
        image = tmp_path / f"a.{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=red:s=16x16", "-frames:v", "1", str(image)], check=True)
        assert sniff(image) == name, suffix
    (tmp_path / "list.m3u8").write_text("#EXTM3U\n")
    assert sniff(tmp_path / "list.m3u8") is None


def test_a_playlist_posing_as_a_side_video_is_not_read(tmp_path):
    """An HLS playlist naming another video on disk: ffprobe left to guess reads that video."""
    secret = media.color_video(tmp_path / "secret.mp4", "red", size="64x64", duration=1.0)
    playlist = tmp_path / "caller-000.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n")
    guessed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name", str(playlist)], capture_output=True, text=True)
    assert "format_name=hls" in guessed.stdout  # the hazard, as FFmpeg has it
    with pytest.raises(InvalidMedia, match=r"caller-000.mp4: not MP4 \(its content is none of those\)"):
        probe_video(playlist, Settings(), accept=VIDEO)


def test_each_use_takes_only_its_kinds(tmp_path):
    video = media.color_video(tmp_path / "clip.mp4", "red", size="64x64", duration=0.5).rename(tmp_path / "avatar.png")  # named like an image
    with pytest.raises(InvalidMedia, match=r"avatar.png: not PNG or JPEG or WebP \(it is MP4\)"):
        probe_video(video, Settings(), accept=IMAGE)
    with pytest.raises(InvalidMedia, match=r"not MP3 or WAV or FLAC or Ogg or M4A \(it is MP4\)"):
        probe(video, ffprobe="ffprobe", accept=RECORDING)


def test_the_arguments_name_the_format_the_protocol_and_a_file_url(tmp_path):
    recording = media.tone_call(tmp_path / "concat:evil.mp3", 1.0)  # a name FFmpeg would read as a protocol
    args = input_args(recording, RECORDING)
    assert args == ["-f", "mp3", "-protocol_whitelist", "file", "-i", f"file:{recording}"]
    assert probe(recording, ffprobe="ffprobe", accept=RECORDING)["format"]["format_name"] == "mp3"


@pytest.mark.parametrize(("suffix", "codec", "name"), [("flac", "flac", "flac"), ("ogg", "libopus", "ogg"), ("m4a", "aac", "m4a")])
def test_a_platform_recording_is_read_as_its_format_and_an_m4a_is_no_video(tmp_path, suffix, codec, name):
    """Voice-agent platforms send FLAC, Ogg and M4A as well: each is known by its bytes and opens as a stereo recording."""
    source = media.tone_call(tmp_path / "call.wav", 1.0)
    recording = tmp_path / f"call.{suffix}"
    media.ffmpeg("-i", str(source), "-c:a", codec, str(recording))
    assert sniff(recording) == name
    stream = next(s for s in probe(recording, ffprobe="ffprobe", accept=RECORDING)["streams"] if s["codec_type"] == "audio")
    assert stream["channels"] == 2
    if name == "m4a":  # the mov demuxer's, but never taken for a side video
        with pytest.raises(InvalidMedia, match=r"not MP4 \(it is M4A\)"):
            probe_video(recording, Settings(), accept=VIDEO)
