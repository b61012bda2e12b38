"""``POST /calls`` through every real process: a URL submission and a ``callreel submit`` upload each become a video, once."""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import pytest

from shared import keys
from shared.models import Call, Source, TranscriptStatus, VideoStatus
from tests.e2e.harness import API_TOKEN, ROOT
from tests.support import media
from tests.support.env import BIN

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_a_url_submission_and_a_cli_upload_each_complete_once(pipeline, tmp_path):
    # By URL: the fake Twilio's server stands for a platform's storage; it answers only with the Basic credential given.
    recording = pipeline.twilio.add_recording(pipeline.recording(3.0))
    credential = base64.b64encode(f"{pipeline.twilio.account_sid}:{pipeline.twilio.auth_token}".encode()).decode()
    body = {
        "external_id": "e2e-url-1",
        "recording_url": pipeline.twilio.recording_url(recording) + ".mp3",
        "recording_auth": f"Basic {credential}",
        "transcript": [{"speaker": "caller", "start": 0.4, "end": 1.3, "text": "Hello."}, {"speaker": "callee", "start": 1.7, "end": 2.6, "text": "Hi."}],
    }
    first = httpx.post(f"{pipeline.base_url}/calls", json=body, headers=AUTH, timeout=20)
    assert first.status_code == 201, first.text
    by_url = first.json()["id"]

    # By upload, through the command line, as FLAC; --wait follows it to the end.
    flac = tmp_path / "call.flac"
    mp3 = tmp_path / "call.mp3"
    mp3.write_bytes(pipeline.recording(3.0))
    media.ffmpeg("-i", str(mp3), "-c:a", "flac", str(flac))
    command = [str(BIN / "callreel"), "submit", str(flac), "--url", pipeline.base_url, "--caller-name", "Clinic bot", "--wait", "--poll", "0.5"]
    done = subprocess.run(command, cwd=ROOT, env=pipeline.env("cli"), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr + pipeline.logs()
    by_upload = done.stdout.split()[0]
    assert json.loads(done.stdout[done.stdout.index("{"):])["status"] == "completed", done.stdout

    calls = pipeline.wait_ended([by_url, by_upload])
    for call_id in (by_url, by_upload):
        assert calls[call_id].video_status == VideoStatus.COMPLETED, pipeline.describe(call_id)
        assert calls[call_id].source == Source.API
        assert pipeline.exists(keys.video_key(call_id))
    assert calls[by_url].transcript_status == TranscriptStatus.SUPPLIED  # not transcribed again
    assert calls[by_url].recording_auth is None  # the sealed credential went with the fetch
    assert [g.authorized for g in pipeline.twilio.media_gets(recording)] == [True]
    assert pipeline.object_bytes(keys.recording_key(by_upload, "flac")) == flac.read_bytes()
    assert calls[by_upload].caller_name == "Clinic bot"

    # Both again: the same calls, nothing new made or fetched.
    again = httpx.post(f"{pipeline.base_url}/calls", json=body, headers=AUTH, timeout=20)
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (200, by_url, "completed")
    repeat = subprocess.run(command[:-3], cwd=ROOT, env=pipeline.env("cli"), capture_output=True, text=True, timeout=60)
    assert repeat.returncode == 0 and repeat.stdout.startswith(f"{by_upload} already submitted (completed)"), repeat.stdout + repeat.stderr
    assert Call.select().where(Call.source == Source.API).count() == 2
    assert len(pipeline.twilio.media_gets(recording)) == 1
