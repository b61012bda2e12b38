"""``GET /media/{key}``: a local-folder store's videos, behind the session or the token, with byte ranges."""

import os

import falcon.testing
import pytest

from services.ingest.app import create_app
from shared import keys
from shared.models import VideoStatus
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call
from tests.support.objects import put

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALL = "CA" + "4" * 32
BODY = os.urandom(300_000)


@pytest.fixture
def media(pg_db, stub_broker, ingest_env, local_store):
    put(local_store, keys.video_key(CALL), BODY)
    put(local_store, keys.recording_key(CALL), b"mp3")
    return falcon.testing.TestClient(create_app())


def get(client, key=None, headers=AUTH, **extra):
    return client.simulate_get(f"/media/{key or keys.video_key(CALL)}", headers={**headers, **extra})


def test_the_whole_video_and_any_range_of_it(media):
    whole = get(media)
    assert whole.status_code == 200 and whole.content == BODY
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(BODY)

    first = get(media, Range="bytes=0-1")  # what Chromium asks first
    assert first.status_code == 206 and first.content == BODY[:2]
    assert first.headers["content-range"] == f"bytes 0-1/{len(BODY)}"
    middle = get(media, Range="bytes=1000-200999")
    assert middle.status_code == 206 and middle.content == BODY[1000:201000]
    rest = get(media, Range="bytes=299000-")
    assert rest.content == BODY[299000:] and rest.headers["content-range"] == f"bytes 299000-{len(BODY) - 1}/{len(BODY)}"
    tail = get(media, Range="bytes=-500")
    assert tail.content == BODY[-500:]
    beyond = get(media, Range=f"bytes=10-{len(BODY) + 50}")
    assert beyond.status_code == 206 and beyond.content == BODY[10:]


def test_ranges_it_cannot_serve(media):
    past = get(media, Range=f"bytes={len(BODY)}-")
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(BODY)}"
    # Several ranges, or nonsense: ignored, as RFC 9110 allows; the whole video is sent.
    for header in ("bytes=0-1,5-9", "bytes=abc", "pages=1-2"):
        response = get(media, Range=header)
        assert response.status_code == 200 and response.content == BODY, header


def test_head_gives_the_size_without_the_body(media):
    response = media.simulate_head(f"/media/{keys.video_key(CALL)}", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-length"] == str(len(BODY)) and response.content == b""


def test_only_videos_are_served_and_no_path_escapes_the_store(media):
    for key in (
        keys.recording_key(CALL),  # a recording is not a video
        keys.video_key("CA" + "5" * 32),  # no such object
        "videos/../recordings/" + CALL + ".mp3",
        "videos/%2e%2e/%2e%2e/etc/passwd",
        "videos//" + CALL + ".mp4",
        "videos/" + CALL + ".mp4.bak",
    ):
        assert get(media, key).status_code == 404, key


def test_the_session_cookie_or_the_token_and_nothing_else(media):
    assert get(media, headers={}).status_code == 401
    assert get(media, headers={"Authorization": "Bearer wrong"}).status_code == 401
    login = media.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers={"Content-Type": "application/x-www-form-urlencoded"})
    cookie = {"Cookie": f"callreel_session={login.cookies['callreel_session'].value}"}
    assert get(media, headers=cookie).content == BODY


def test_the_status_api_and_the_page_point_at_the_media_route(media, local_store):
    make_call(CALL, video_status=VideoStatus.COMPLETED, video_url=local_store.object_url(keys.video_key(CALL)))
    assert media.simulate_get(f"/calls/{CALL}", headers=AUTH).json["video_url"] == f"/media/videos/{CALL}.mp4"


def test_with_s3_the_route_serves_nothing(pg_db, stub_broker, ingest_env, s3):
    put(s3, keys.video_key(CALL), b"video", "video/mp4")
    client = falcon.testing.TestClient(create_app())
    assert get(client).status_code == 404  # S3 videos are fetched by presigned URL


def test_a_local_stores_transcript_and_captions_are_linked_and_served(media, local_store):
    """With a local store, the status API links the call's transcript and captions to this route too."""
    put(local_store, keys.transcript_key(CALL), b'{"turns": []}\n')
    put(local_store, keys.captions_key(CALL), b"WEBVTT\n")
    make_call(
        CALL, video_status=VideoStatus.COMPLETED, transcript_status="supplied",
        transcript_url=local_store.object_url(keys.transcript_key(CALL)), captions_url=local_store.object_url(keys.captions_key(CALL)),
    )
    view = media.simulate_get(f"/calls/{CALL}", headers=AUTH).json
    assert (view["transcript_url"], view["captions_url"]) == (f"/media/transcripts/{CALL}.json", f"/media/captions/{CALL}.vtt")
    transcript, captions = get(media, keys.transcript_key(CALL)), get(media, keys.captions_key(CALL))
    assert (transcript.content, transcript.headers["content-type"]) == (b'{"turns": []}\n', "application/json; charset=utf-8")
    assert (captions.content, captions.headers["content-type"]) == (b"WEBVTT\n", "text/vtt; charset=utf-8")
    for key in (f"transcripts/{CALL}.vtt", f"captions/{CALL}.json", f"transcripts/{CALL}.json.bak"):
        assert get(media, key).status_code == 404, key
    assert get(media, keys.captions_key(CALL), headers={}).status_code == 401


def test_a_calls_poster_is_served_as_an_image(media, local_store):
    put(local_store, keys.poster_key(CALL), b"\xff\xd8poster")
    put(local_store, f"videos/{CALL}.jpeg", b"not a key shared.keys makes")
    make_call(id=CALL, video_status=VideoStatus.COMPLETED, poster_url=local_store.object_url(keys.poster_key(CALL)))
    poster = get(media, keys.poster_key(CALL))
    assert poster.content == b"\xff\xd8poster" and poster.headers["content-type"] == "image/jpeg"
    assert get(media, f"videos/{CALL}.jpeg").status_code == 404
    assert get(media, keys.poster_key(CALL), headers={}).status_code == 401
    assert media.simulate_get(f"/calls/{CALL}", headers=AUTH).json["poster_url"] == f"/media/videos/{CALL}.jpg"
