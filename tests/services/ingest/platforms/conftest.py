"""Fixtures of the platform webhook tests: the ingest app with every platform turned on, and its calls table."""

from __future__ import annotations

import json

import pytest

VAPI_SECRET = "vapi-server-secret-" + "v" * 20
RETELL_KEY = "key_retell_" + "r" * 24
ELEVENLABS_SECRET = "wsec_" + "e" * 40


@pytest.fixture
def platform_client(pg_db, stub_broker, ingest_env, tmp_path):
    """The ingest app with Vapi, Retell and ElevenLabs turned on (their documented recording hosts allowed)."""
    import falcon.testing

    from services.ingest.app import create_app

    ingest_env(
        VAPI_WEBHOOK_SECRET=VAPI_SECRET,
        RETELL_API_KEY=RETELL_KEY,
        ELEVENLABS_WEBHOOK_SECRET=ELEVENLABS_SECRET,
        TMP_DIR=str(tmp_path / "tmp"),
        CALLREEL_DATA_DIR=str(tmp_path / "data"),
    )
    return falcon.testing.TestClient(create_app())


def post(client, path: str, body: bytes, headers: dict[str, str]):
    return client.simulate_post(path, body=body, headers={"Content-Type": "application/json", **headers})


def calls(source: str) -> list:
    from shared.models import Call

    return list(Call.select().where(Call.source == source))


def stored_turns(call) -> list[dict]:
    """The transcript stored for a call, as turns."""
    from shared.storage import get_storage

    storage = get_storage()
    key = f"transcripts/{call.id}.json"
    path = storage.path(key)  # type: ignore[attr-defined]  # the local store in these tests
    return json.loads(path.read_text())["turns"]


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture
def stereo_mp3(tmp_path):
    """A short two-channel MP3, as a platform would send it."""
    from tests.support.media import tone_call

    return tone_call(tmp_path / "platform-call.mp3", 2.0, caller=((0.2, 0.9),), callee=((1.1, 1.8),))
