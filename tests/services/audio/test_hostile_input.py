"""A "recording" that is a playlist, a concat list or another container must not make FFmpeg read anything else.

Each is given where a recording goes (the name is always ``recording``); the
file it points at is a perfectly good stereo recording elsewhere on disk, so
an FFmpeg left to guess the format would accept it and split *that* file.
"""

from __future__ import annotations

import pytest

from services.audio.probe import probe_recording
from services.audio.split import split_recording
from shared.errors import PermanentError
from tests.support import media


def _hls(secret):
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3.0,\n{secret}\n#EXT-X-ENDLIST\n"


def _concat(secret):
    return f"ffconcat version 1.0\nfile '{secret}'\n"


@pytest.mark.parametrize("listing", [_hls, _concat], ids=["hls-playlist", "concat-list"])
def test_a_listing_of_another_file_is_not_an_audio_file(tmp_path, settings_env, listing):
    (tmp_path / "elsewhere").mkdir()
    secret = media.tone_call(tmp_path / "elsewhere" / "secret.mp3", 3.0)  # HLS's allowed segment extensions include mp3
    work = tmp_path / "work"
    work.mkdir()
    recording = work / "recording"
    recording.write_text(listing(secret))
    settings = settings_env()
    with pytest.raises(PermanentError, match="^not an audio file"):
        info = probe_recording(recording, ffprobe="ffprobe", max_seconds=60, workdir=work)
        split_recording(recording, work, info, settings)  # what reading the secret would lead to


def test_a_video_is_not_a_recording(tmp_path):
    video = media.color_video(tmp_path / "clip.mp4", "red", audio=True)
    with pytest.raises(PermanentError, match=r"^not an audio file: .*not MP3 or WAV or FLAC or Ogg or M4A \(it is MP4\)"):
        probe_recording(video, ffprobe="ffprobe", max_seconds=60, workdir=tmp_path)
