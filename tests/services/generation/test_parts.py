"""The generation service's parts, one at a time: error kinds, configuration, the poll gate, avatars, the cache key, videos."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from fal_client.client import FalClientHTTPError

from services.generation import fal as falmod
from services.generation.avatars import avatar_for
from services.generation.cache import cache_key
from services.generation.config import check_configuration
from services.generation.jobs import claim_poll, url_expiry
from services.generation.videos import BadVideo, fetch_video
from shared.fal_models import model_for
from shared.models import Segment, SegmentState, utcnow
from shared.settings import SettingsError, load_settings
from tests.support.fake_fal import Behaviour


def http_error(code: int, detail) -> FalClientHTTPError:
    response = httpx.Response(code, json={"detail": detail}, request=httpx.Request("POST", "https://queue.fal.run/x/y"))
    return FalClientHTTPError(detail, code, dict(response.headers), response=response)


@pytest.mark.parametrize("code, kind", [(429, "transient"), (408, "transient"), (500, "transient"), (503, "transient"),
                                        (422, "rejected"), (400, "rejected"), (401, "rejected"), (404, "rejected")])
def test_fal_errors_are_transient_or_rejected(code, kind):
    error = falmod.classify(http_error(code, "nope"))
    assert error.kind == kind and error.status_code == code


def test_validation_details_are_readable_and_network_errors_transient():
    detail = [{"loc": ["body", "audio_url"], "msg": "Audio is too long", "type": "value_error"}]
    assert "audio_url: Audio is too long" in str(falmod.classify(http_error(422, detail)))
    assert falmod.classify(httpx.ConnectError("refused")).transient
    assert falmod.classify(httpx.ReadTimeout("slow")).transient


def test_presigned_urls_outlive_the_job():
    settings = load_settings({"FAL_JOB_TIMEOUT": "3600", "PRESIGNED_URL_EXPIRY": "600"})
    assert url_expiry(settings) > 3600
    # A job may wait in fal's queue up to STAGE_DEADLINE, then run up to FAL_JOB_TIMEOUT.
    assert url_expiry(load_settings({"STAGE_DEADLINE": "7200", "FAL_JOB_TIMEOUT": "600"})) > 7200 + 600
    assert url_expiry(load_settings({"FAL_JOB_TIMEOUT": "60", "PRESIGNED_URL_EXPIRY": "86400"})) == 86400
    assert url_expiry(load_settings({"FAL_JOB_TIMEOUT": "9999999"})) == 7 * 24 * 3600  # S3's ceiling


def test_configuration_with_a_key_needs_s3_and_a_known_model():
    check_configuration(load_settings({}))  # no key: nothing to check
    with pytest.raises(SettingsError) as caught:
        check_configuration(load_settings({"FAL_KEY": "k", "FAL_MODEL": "fal-ai/unknown", "BROKER_URL": "amqp://rabbit:5672"}))
    problems = "\n".join(caught.value.problems)
    assert "S3_BUCKET" in problems and "fal-ai/unknown" in problems
    # callreel render/serve (the in-process broker) send fal its inputs inside the request: no S3 needed there.
    check_configuration(load_settings({"FAL_KEY": "k", "BROKER_URL": "memory://"}))


def test_configuration_with_a_key_needs_a_known_speech_model():
    check_configuration(load_settings({"STT_MODEL": "fal-ai/nope"}))  # no key: nothing is transcribed
    with pytest.raises(SettingsError) as caught:
        check_configuration(load_settings({"FAL_KEY": "k", "STT_MODEL": "fal-ai/nope"}))
    assert any("STT_MODEL 'fal-ai/nope' is not supported" in p and "fal-ai/wizper" in p for p in caught.value.problems)


def test_speech_models_take_the_documented_input():
    from shared.fal_models import speech_model_for

    for endpoint in ("fal-ai/wizper", "fal-ai/whisper"):
        assert speech_model_for(endpoint).build_input("https://a/x.mp3", "en") == {
            "audio_url": "https://a/x.mp3", "task": "transcribe", "language": "en", "chunk_level": "segment",
        }
    # An empty STT_LANGUAGE: null, which asks the model to detect the language.
    assert speech_model_for("fal-ai/wizper").build_input("https://a/x.mp3", "")["language"] is None


def test_fal_client_host_is_checked():
    from fal_client import client

    falmod.check_queue_host(client.QUEUE_URL_FORMAT[len("https://"):-1])
    with pytest.raises(RuntimeError, match="FAL_QUEUE_RUN_HOST"):
        falmod.check_queue_host("queue.elsewhere.example")


def test_one_poll_chain_per_job(sqlite_db, settings_env):
    settings = settings_env(FAL_POLL_INTERVAL="10")
    segment = Segment.create(call_id="CA" + "1" * 32, side="caller", index=0, start=0, end=5, state=SegmentState.SUBMITTED)
    Segment.update(updated_at=utcnow() - dt.timedelta(seconds=11)).where(Segment.id == segment.id).execute()
    assert claim_poll(segment, settings) is True
    assert claim_poll(segment, settings) is False  # a second chain, moments later, stops here
    Segment.update(updated_at=utcnow() - dt.timedelta(seconds=6)).where(Segment.id == segment.id).execute()
    assert claim_poll(segment, settings) is True  # the next poll of the one chain, an interval later
    Segment.update(state=SegmentState.COMPLETED, updated_at=utcnow() - dt.timedelta(seconds=60)).where(Segment.id == segment.id).execute()
    assert claim_poll(segment, settings) is False  # nothing left to poll


def test_a_chain_polling_at_its_own_pace_passes_the_gate(settings_env):
    settings = settings_env(FAL_POLL_INTERVAL="10")
    segment = Segment.create(call_id="CA" + "2" * 32, side="caller", index=0, start=0, end=4, state=SegmentState.SUBMITTED)
    Segment.update(updated_at=utcnow() - dt.timedelta(seconds=2.1)).where(Segment.id == segment.id).execute()
    assert claim_poll(segment, settings) is False  # at the setting's pace, a look 2 s after the last is a duplicate
    assert claim_poll(segment, settings, 2.0) is True  # a 4 s job polled every 2 s: its chain goes on
    assert claim_poll(segment, settings, 2.0) is False  # and a second chain moments later still stops


def test_shipped_avatar_is_stored_once_under_its_content(s3, settings_env):
    settings = settings_env()
    first = avatar_for("caller", settings, s3, expires=7200)
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("avatars/caller-") and keys[0].endswith(".png")
    assert "X-Amz-Expires=7200" in first.url and first.identity.startswith("sha256:")
    second = avatar_for("caller", settings, s3, expires=7200)
    assert second.identity == first.identity and len(s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]) == 1
    assert avatar_for("callee", settings, s3, expires=60).identity != first.identity
    configured = avatar_for("caller", settings_env(CALLER_AVATAR_URL="https://cdn.example/me.png"), s3, expires=60)
    assert configured.url == "https://cdn.example/me.png" and configured.identity == "url:https://cdn.example/me.png"


def test_a_calls_own_stored_avatar_is_presigned_and_known_by_its_bytes(s3, settings_env, tmp_path):
    import hashlib

    from shared.avatars import store_avatar
    from tests.support.media import ffmpeg

    settings = settings_env(CALLER_AVATAR_URL="https://cdn.example/deployment.png")
    call_id = "CA" + uuid.uuid4().hex
    image = tmp_path / "face.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=300x300", "-frames:v", "1", str(image))
    key = store_avatar(call_id, "caller", image.read_bytes(), settings, s3)
    own = avatar_for("caller", settings, s3, expires=600, reference=key, workdir=tmp_path)
    assert f"/{key}?" in own.url and "X-Amz-Expires=600" in own.url
    stored = tmp_path / "stored.png"
    s3.download_file(key, stored)
    assert own.identity == "sha256:" + hashlib.sha256(stored.read_bytes()).hexdigest()
    # Gone from the store: the deployment's avatar, not a failed side.
    s3.client.delete_object(Bucket=s3.bucket, Key=key)
    assert avatar_for("caller", settings, s3, expires=600, reference=key, workdir=tmp_path).url == "https://cdn.example/deployment.png"


def test_cache_key_changes_with_every_input(s3, settings_env):
    settings = settings_env()
    avatar = avatar_for("caller", settings, s3, expires=60)
    model = model_for("fal-ai/stable-avatar")
    base = cache_key("a" * 64, model, avatar, "prompt", 10.0)
    assert base == cache_key("a" * 64, model, avatar, "prompt", 10.0)
    assert base != cache_key("b" * 64, model, avatar, "prompt", 10.0)
    assert base != cache_key("a" * 64, model_for("fal-ai/kling-video/ai-avatar/v2/pro"), avatar, "prompt", 10.0)
    assert base != cache_key("a" * 64, model, avatar_for("callee", settings, s3, expires=60), "prompt", 10.0)
    assert base != cache_key("a" * 64, model, avatar, "another prompt", 10.0)
    # A packed segment (#26): the same audio cut back at other places is another video to the compositor.
    packed = cache_key("a" * 64, model, avatar, "prompt", 10.0, [[1.0, 6.0, 0.0], [20.0, 25.0, 5.0]])
    assert packed not in (base, cache_key("a" * 64, model, avatar, "prompt", 10.0, [[1.0, 6.0, 0.0], [30.0, 35.0, 5.0]]))
    assert packed == cache_key("a" * 64, model, avatar, "prompt", 10.0, ((1, 6, 0), (20, 25, 5)))
    assert cache_key("a" * 64, model, avatar, "prompt", 10.0, None) == base


@pytest.fixture
def fal_files(fake_fal, monkeypatch):
    """The fake's file host, trusted by this process's httpx (it reads SSL_CERT_FILE per client)."""
    monkeypatch.setenv("SSL_CERT_FILE", fake_fal.ca_file)
    fake_fal.jobs.clear()
    return fake_fal


def add_job(fake, behaviour: Behaviour) -> str:
    from tests.support.fake_fal import Job

    request_id = str(uuid.uuid4())
    fake.jobs[request_id] = Job(request_id, "fal-ai/stable-avatar", {}, behaviour, 0.0)
    return request_id


def test_video_is_streamed_and_checked(fal_files, tmp_path):
    good = add_job(fal_files, Behaviour())
    assert fetch_video(fal_files.video_url(good), tmp_path / "v.mp4") == len(fal_files.video)
    assert (tmp_path / "v.mp4").read_bytes() == fal_files.video
    with pytest.raises(BadVideo, match="MP4"):
        fetch_video(fal_files.video_url(add_job(fal_files, Behaviour(outcome="bad_video"))), tmp_path / "x.mp4")
    with pytest.raises(BadVideo, match="404"):
        fetch_video(fal_files.video_url("no-such-job"), tmp_path / "y.mp4")
    with pytest.raises(BadVideo, match="larger"):
        fetch_video(fal_files.video_url(good), tmp_path / "z.mp4", max_bytes=100)
    with pytest.raises(BadVideo, match="https"):
        fetch_video(fal_files.video_url(good).replace("https://", "http://"), tmp_path / "w.mp4")
