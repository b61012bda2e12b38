"""``POST /calls``: a call submitted by recording URL or by upload, once per external_id, hostile URLs refused.

Through the Falcon app on PostgreSQL, moto's S3 server and the in-process
broker; the URL is served by the fake Twilio's TLS server (an https server that
checks a Basic credential), and the ingest and audio stages run in-process on
what was submitted.
"""

from __future__ import annotations

import base64
import json
import urllib.request

import falcon.testing
import pytest
from dramatiq import Message

from services.audio.probe import MONO
from services.ingest.app import create_app
from shared import keys
from shared.models import Call, Source, Stage, TranscriptStatus, VideoStatus
from tests.services.ingest.conftest import API_TOKEN, PUBLIC_BASE_URL
from tests.support import media

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
TURNS = [
    {"speaker": "caller", "start": 0.5, "end": 1.5, "text": "Hello, this is the clinic."},
    {"speaker": "callee", "start": 2.5, "end": 3.5, "text": "Hi, I need an appointment."},
]


@pytest.fixture
def api(pg_db, stub_broker, ingest_env, s3, fake_twilio):
    ingest_env(RECORDING_URL_HOSTS=f"{fake_twilio.host},*.example.com")
    return falcon.testing.TestClient(create_app())


def queued(broker, queue: str) -> list[tuple[str, dict]]:
    return [(m.actor_name, m.kwargs) for m in (Message.decode(d) for d in broker.queues[queue].queue)] if queue in broker.queues else []


def post_json(api, body: dict, headers=AUTH):
    return api.simulate_post("/calls", body=json.dumps(body), headers={**headers, "Content-Type": "application/json"})


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (name, filename, data) parts, and its Content-Type."""
    boundary = "callreel-test-boundary"
    chunks = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_form(api, parts, headers=AUTH):
    body, content_type = multipart(parts)
    return api.simulate_post("/calls", body=body, headers={**headers, "Content-Type": content_type})


def stored_json(s3, key: str) -> dict:
    with urllib.request.urlopen(s3.presigned_url(key), timeout=10) as answer:
        return json.loads(answer.read())


def test_a_url_submission_is_fetched_by_the_worker_with_its_sealed_credential_once(api, stub_broker, fake_twilio, s3, tmp_path):
    recording = fake_twilio.add_recording(media.tone_call(tmp_path / "call.wav", 4.0).read_bytes())
    basic = "Basic " + base64.b64encode(f"{fake_twilio.account_sid}:{fake_twilio.auth_token}".encode()).decode()
    body = {
        "external_id": "crm-call-1",
        "recording_url": fake_twilio.recording_url(recording) + ".wav",
        "recording_auth": basic,
        "transcript": TURNS,
        "caller_name": "Clinic bot",
        "agent_channel": "right",
    }
    answer = post_json(api, body)
    assert answer.status_code == 201, answer.text
    call_id = answer.json["id"]
    assert answer.json == {
        "id": call_id, "created": True, "status": "pending", "queued": True, "status_url": f"{PUBLIC_BASE_URL}/calls/{call_id}",
    }
    assert answer.headers["Location"] == answer.json["status_url"]
    call = Call.get_by_id(call_id)
    assert (call.source, call.external_id, call.stage, call.caller_name, call.caller_channel) == (
        Source.API, "crm-call-1", Stage.INGEST, "Clinic bot", "right",
    )
    assert call.recording_auth and fake_twilio.auth_token not in call.recording_auth and "Basic" not in call.recording_auth
    assert call.transcript_status == TranscriptStatus.SUPPLIED
    assert stored_json(s3, keys.transcript_key(call_id))["turns"] == TURNS
    assert queued(stub_broker, "ingest") == [("download_recording", {"call_id": call_id})]

    # The same external_id again (a client's retry): the same call, nothing new stored or sent.
    again = post_json(api, body)
    assert (again.status_code, again.json["id"], again.json["created"]) == (200, call_id, False)
    assert Call.select().where(Call.external_id == "crm-call-1").count() == 1
    assert len(queued(stub_broker, "ingest")) == 1

    # The worker fetches it with the credential (the fake answers 401 without), stores it as WAV, forgets the credential.
    from services.ingest import stage

    stage.download_recording(call_id)
    call = Call.get_by_id(call_id)
    assert [g.authorized for g in fake_twilio.media_gets(recording)] == [True]
    assert (call.recording_format, call.recording_auth, call.stage) == ("wav", None, Stage.AUDIO)
    assert s3.exists(keys.recording_key(call_id, "wav")) and not s3.exists(keys.recording_key(call_id))
    assert queued(stub_broker, "audio") == [("split_channels", {"call_id": call_id})]


def test_an_upload_is_stored_under_its_format_and_split_by_the_audio_stage(api, stub_broker, s3, tmp_path):
    wav = media.tone_call(tmp_path / "call.wav", 4.0)
    flac = tmp_path / "call.flac"
    media.ffmpeg("-i", str(wav), "-c:a", "flac", str(flac))
    vtt = "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\n<v Clinic bot>Hello.</v>\n\n00:00:02.500 --> 00:00:03.500\n<v Customer>Hi.</v>\n"
    parts = [
        ("external_id", None, b"upload-1"),
        ("caller_name", None, b"Clinic bot"),
        ("callee_name", None, b"Customer"),
        ("captions", None, b"track"),
        ("agent_channel", None, b"right"),  # the agent on the right: the first speaker (left) is the callee
        ("transcript", "call.vtt", vtt.encode()),
        ("recording", "call.flac", flac.read_bytes()),
    ]
    answer = post_form(api, parts)
    assert answer.status_code == 201, answer.text
    call_id = answer.json["id"]
    call = Call.get_by_id(call_id)
    assert (call.source, call.stage, call.recording_format, call.captions, call.video_status) == (
        Source.API, Stage.AUDIO, "flac", "track", VideoStatus.PENDING,
    )
    assert [t["speaker"] for t in stored_json(s3, keys.transcript_key(call_id))["turns"]] == ["caller", "callee"]
    assert queued(stub_broker, "audio") == [("split_channels", {"call_id": call_id})]
    assert s3.size(keys.recording_key(call_id, "flac")) == flac.stat().st_size

    again = post_form(api, parts)
    assert (again.status_code, again.json["id"]) == (200, call_id)
    assert len(queued(stub_broker, "audio")) == 1

    from services.audio import stage as audio

    audio.split_channels(call_id)
    call = Call.get_by_id(call_id)
    assert call.audio_finished_at is not None and call.stage == Stage.GENERATION
    assert call.audio_duration == pytest.approx(4.0, abs=0.1)
    # tone_call: left speaks 0.5–2.0 s, right 2.5–4.0 s; the agent (caller) is the right channel here.
    assert call.caller_speech[0][0] == pytest.approx(2.5, abs=0.2) and call.callee_speech[0][0] == pytest.approx(0.5, abs=0.2)


def test_a_mono_upload_is_accepted_then_failed_by_the_audio_stage_with_the_reason(api, stub_broker, stub_worker, s3, tmp_path):
    from services.audio import actors  # noqa: F401  (declares the audio actor on the in-process broker)

    mono = media.mono_file(tmp_path / "mono.wav")
    answer = post_form(api, [("external_id", None, b"mono-1"), ("recording", "mono.wav", mono.read_bytes())])
    assert answer.status_code == 201, answer.text
    stub_broker.join("audio", fail_fast=False)
    stub_worker.join()
    call = Call.get_by_id(answer.json["id"])
    assert (call.video_status, call.video_error_message) == (VideoStatus.FAILED, MONO)
    assert "stereo recording, one channel per side" in MONO


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://calls.example.com/rec.wav", "must be https"),
        ("https://evil.test/rec.wav", "host 'evil.test' is not allowed (RECORDING_URL_HOSTS)"),
        ("https://user:pw@calls.example.com/rec.wav", "must not carry credentials"),
        ("ftp://calls.example.com/rec.wav", "must be https"),
        ("https://calls.example.com:8443/rec.wav", "is not allowed"),  # a wildcard allows port 443 only
    ],
)
def test_hostile_urls_are_refused_and_nothing_is_stored(api, stub_broker, url, reason):
    answer = post_json(api, {"external_id": "x", "recording_url": url})
    assert answer.status_code == 400
    assert any(reason in e for e in answer.json["errors"]), answer.json
    assert Call.select().count() == 0 and queued(stub_broker, "ingest") == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.8", "[::1]"])
def test_a_private_address_is_refused_even_when_every_host_is_allowed(api, ingest_env, stub_broker, host):
    ingest_env(RECORDING_URL_HOSTS="*")
    api = falcon.testing.TestClient(create_app())
    answer = post_json(api, {"external_id": "x", "recording_url": f"https://{host}/latest/meta-data"})
    assert answer.status_code == 400
    assert "private address" in answer.json["description"]
    assert Call.select().count() == 0


def test_no_url_is_fetched_when_no_host_is_allowed(api, ingest_env):
    ingest_env(RECORDING_URL_HOSTS="")
    api = falcon.testing.TestClient(create_app())
    answer = post_json(api, {"external_id": "x", "recording_url": "https://calls.example.com/rec.wav"})
    assert answer.status_code == 400
    assert "RECORDING_URL_HOSTS is empty" in answer.json["description"]


def test_an_oversize_upload_is_refused_and_leaves_nothing(api, ingest_env, stub_broker, s3, tmp_path):
    ingest_env(RECORDING_URL_HOSTS="", RECORDING_MAX_BYTES="10000", TMP_DIR=str(tmp_path / "tmp"))
    api = falcon.testing.TestClient(create_app())
    answer = post_form(api, [("external_id", None, b"big"), ("recording", "big.wav", b"RIFF" + b"\0" * 20000)])
    assert answer.status_code == 413
    assert Call.select().count() == 0 and queued(stub_broker, "audio") == []
    assert list((tmp_path / "tmp").iterdir()) == []  # the spooled part went with the request


def test_every_problem_is_named_at_once(api):
    answer = post_json(
        api,
        {"external_id": "", "recording_url": "http://x", "captions": "loud", "agent_channel": "middle", "transcript": [{"speaker": "bot"}]},
    )
    assert answer.status_code == 400
    errors = " | ".join(answer.json["errors"])
    for expected in ("external_id must be a non-empty string", "must be https", "captions must be one of", "agent_channel must be left or right", "transcript:"):
        assert expected in errors


def test_not_an_audio_file_and_no_token_are_refused(api, tmp_path):
    answer = post_form(api, [("external_id", None, b"text"), ("recording", "notes.txt", b"just some text, no audio")])
    assert answer.status_code == 400 and "not an audio file" in answer.json["description"]
    assert post_json(api, {"external_id": "x", "recording_url": "https://calls.example.com/a.wav"}, headers={}).status_code == 401


def test_the_source_shows_in_the_status_api_the_list_and_the_page(api, operator_client, tmp_path):
    wav = media.tone_call(tmp_path / "call.wav", 2.0)
    call_id = post_form(api, [("external_id", None, b"listed"), ("recording", "call.wav", wav.read_bytes())]).json["id"]
    assert api.simulate_get(f"/calls/{call_id}", headers=AUTH).json["source"] == "api"
    rows = api.simulate_get("/calls", headers=AUTH).json["calls"]
    assert [(r["id"], r["source"], r["external_id"]) for r in rows] == [(call_id, "api", "listed")]
    assert "api · listed" in operator_client.simulate_get("/ops/calls", headers=operator_client.cookie).text
    assert "<dd>api · external id listed</dd>" in operator_client.simulate_get(f"/ops/calls/{call_id}", headers=operator_client.cookie).text
