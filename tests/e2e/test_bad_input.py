"""Bad recordings end their call with a reason a person understands, and never take a worker down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.assets import avatar_path
from shared.models import VideoStatus
from tests.support.media import color_video, mono_file, tone_call

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def _mono(tmp: Path) -> bytes:
    return mono_file(tmp / "mono.mp3", 3.0).read_bytes()


def _corrupt(tmp: Path) -> bytes:
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + os.urandom(40_000)  # an MP3's header, then noise


def _zero_length(tmp: Path) -> bytes:
    return b""


def _huge_bytes(tmp: Path) -> bytes:
    return os.urandom(4_200_000)  # RECORDING_MAX_BYTES is 4 000 000 in the harness


def _huge_duration(tmp: Path) -> bytes:
    # 320 s (RECORDING_MAX_SECONDS is 300): a long call is small at Twilio's 8 kHz.
    return tone_call(tmp / "long.mp3", 320.0, ((1.0, 3.0),), ((4.0, 6.0),)).read_bytes()


def _image(tmp: Path) -> bytes:
    return avatar_path("caller").read_bytes()


def _video_without_sound(tmp: Path) -> bytes:
    return color_video(tmp / "silent-film.mp4", "red", size="64x64", duration=1.0).read_bytes()


# name → (the body Twilio serves, words the call's reason must contain)
CASES = {
    "mono": (_mono, ["recording is mono", "dual-channel"]),
    "corrupt": (_corrupt, ["not an audio file"]),
    "zero-length": (_zero_length, ["empty", "0 bytes"]),
    "huge-bytes": (_huge_bytes, ["larger than RECORDING_MAX_BYTES"]),
    "huge-duration": (_huge_duration, ["RECORDING_MAX_SECONDS"]),
    "image": (_image, ["not an audio file"]),
    "video-without-sound": (_video_without_sound, ["not an audio file", "not MP3 or WAV or FLAC or Ogg or M4A (it is MP4)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_recording_fails_its_call_with_a_reason(pipeline, case, tmp_path):
    make, words = CASES[case]
    pids = {s: w.process.pid for s, w in pipeline.workers.items()}
    sent = pipeline.send_call(make(tmp_path))
    call = pipeline.wait_ended_one(sent.call_id)

    assert call.video_status == VideoStatus.FAILED, pipeline.describe(sent.call_id)
    for word in words:
        assert word in call.video_error_message, call.video_error_message
    assert str(pipeline.root) not in call.video_error_message  # no temp paths in what people read
    assert call.video_processing_completed_at is not None
    # Refused, not retried: one attempt at the stage that found the problem.
    stage = "ingest" if case in ("zero-length", "huge-bytes") else "audio"
    assert getattr(call, f"{stage}_attempts") == 1
    assert pipeline.keys(f"videos/{sent.call_id}") == [] and pipeline.keys(f"audio/{sent.call_id}") == []
    if stage == "ingest":
        assert pipeline.keys(f"recordings/{sent.call_id}") == []  # nothing half-stored
    # The same worker processes are still there, and nothing is left in their temp folders.
    assert {s: w.process.pid for s, w in pipeline.workers.items()} == pids
    assert all(w.alive for w in pipeline.workers.values())
    assert pipeline.temp_leftovers() == []
    assert pipeline.unfinished_uploads() == []
