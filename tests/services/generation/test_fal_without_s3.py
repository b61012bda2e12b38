"""``callreel render`` with FAL_KEY and no S3 bucket: fal gets its inputs as data URIs, against the fake fal, fal-client unpatched."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.assets import avatar_path
from services.generation.inputs import DATA_URI_MAX_BYTES, InputTooLarge, data_uri
from tests.support import media

FAL_KEY = "test-key-0123"

CLI = Path(sys.executable).with_name("callreel")


def _decoded(uri: str, content_type: str) -> bytes:
    prefix = f"data:{content_type};base64,"
    assert uri.startswith(prefix), uri[:60]
    return base64.b64decode(uri[len(prefix):])


def test_render_without_s3_hands_fal_the_audio_and_the_calls_avatar_inside_the_request(fake_fal, tmp_path):
    recording = media.tone_call(tmp_path / "call.mp3", 3.0, caller=[(0.3, 1.4)], callee=[(1.8, 2.7)])
    avatar = tmp_path / "face.png"
    media.ffmpeg("-f", "lavfi", "-i", "color=c=green:s=300x300", "-frames:v", "1", str(avatar))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CALLREEL_DATA_DIR": str(tmp_path / "data"),
        "TMP_DIR": str(tmp_path / "tmp"),
        "FAL_KEY": FAL_KEY,
        "FAL_QUEUE_RUN_HOST": fake_fal.host,
        "SSL_CERT_FILE": fake_fal.ca_file,
        "FAL_POLL_INTERVAL": "0.2",
        "FAL_JOB_TIMEOUT": "30",
    }
    out = tmp_path / "out.mp4"
    result = subprocess.run(
        [str(CLI), "render", str(recording), "-o", str(out), "-q", "--caller-avatar", str(avatar)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert ": completed" in result.stdout, result.stdout
    accepted = [s for s in fake_fal.submissions if s["status"] == 200]
    assert len(accepted) == 2  # one segment a side
    images = sorted(_decoded(s["input"]["image_url"], "image/png") for s in accepted)
    shipped = [avatar_path(side).read_bytes() for side in ("caller", "callee")]
    assert shipped[1] in images and shipped[0] not in images  # the callee's shipped avatar, the caller's own
    own = tmp_path / "own.png"
    own.write_bytes(next(i for i in images if i != shipped[1]))
    stream = media.probe(own)["streams"][0]
    assert (stream["width"], stream["height"]) == (300, 300)
    # The fake fetched each data URI as fal's runners fetch an input, and the audio it got is the segment's.
    for submission in accepted:
        audio = _decoded(submission["input"]["audio_url"], "audio/mpeg")
        assert audio[:3] == b"ID3" or audio[0] == 0xFF
        job = fake_fal.jobs[submission["request_id"]]
        assert job.fetch_error is None and job.audio_sha == hashlib.sha256(audio).hexdigest()
    call_id = re.search(r"\(call (CA[0-9a-f]{32})\)", result.stdout).group(1)
    status = json.loads(subprocess.run([str(CLI), "status", call_id], capture_output=True, text=True, env=env).stdout)
    assert {side["state"] for side in status["sides"].values()} == {"generated"}


def test_an_input_too_large_for_the_request_is_refused_with_the_reason(tmp_path):
    big = tmp_path / "big.mp3"
    big.write_bytes(b"\xff" * (DATA_URI_MAX_BYTES + 1))
    with pytest.raises(InputTooLarge, match=rf"without S3 \(S3_BUCKET\) inputs go to fal inside the request, at most {DATA_URI_MAX_BYTES} bytes"):
        data_uri(big, "audio/mpeg")
