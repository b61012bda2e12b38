"""Share links: made and revoked with the token, one call's page and files for anyone holding the link, 404 otherwise."""

import os
import re
import time

import falcon.testing
import pytest

from services.ingest.app import create_app
from services.ingest.web.share import ShareSigner
from shared import keys
from shared.models import Call, VideoStatus
from tests.services.ingest.conftest import API_TOKEN, PUBLIC_BASE_URL
from tests.support.calls import make_call
from tests.support.objects import put

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALL, OTHER, UNFINISHED = "CA" + "5" * 32, "CA" + "6" * 32, "CA" + "7" * 32
VIDEO, OTHER_VIDEO = os.urandom(200_000), os.urandom(1000)
POSTER = b"\xff\xd8\xff\xe0poster"
CAPTIONS = b"WEBVTT\n\n00:00.000 --> 00:01.000\n<v Caller>Hello\n"


def finished(store, call_id: str, body: bytes, **columns) -> None:
    put(store, keys.video_key(call_id), body)
    make_call(
        id=call_id, video_status=VideoStatus.COMPLETED, video_url=store.object_url(keys.video_key(call_id)), audio_duration=151.2,
        **columns,
    )


@pytest.fixture
def share(pg_db, stub_broker, ingest_env, local_store):
    finished(local_store, CALL, VIDEO, caller_name="Aria", callee_name="Sam <b>O'Neil</b>",
             poster_url=local_store.object_url(keys.poster_key(CALL)), captions_url=local_store.object_url(keys.captions_key(CALL)))
    put(local_store, keys.poster_key(CALL), POSTER)
    put(local_store, keys.captions_key(CALL), CAPTIONS)
    put(local_store, keys.side_video_key(CALL, "caller"), b"side")
    finished(local_store, OTHER, OTHER_VIDEO)
    make_call(id=UNFINISHED, video_status=VideoStatus.GENERATING)
    return falcon.testing.TestClient(create_app())


def make_link(client, call_id: str = CALL) -> str:
    made = client.simulate_post(f"/calls/{call_id}/share", headers=AUTH)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    url = made.json["url"]
    assert url.startswith(f"{PUBLIC_BASE_URL.rstrip('/')}/v/")
    return url.removeprefix(PUBLIC_BASE_URL.rstrip("/"))


def test_a_link_shows_the_call_with_its_poster_captions_and_preview_tags(share):
    path = make_link(share)
    page = share.simulate_get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    base = f"{PUBLIC_BASE_URL.rstrip('/')}{path}"
    tags = dict(re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', html))
    assert tags["og:type"] == "video.other"
    assert tags["og:image"] == f"{base}/poster.jpg" and tags["twitter:image"] == f"{base}/poster.jpg"
    assert tags["og:video"] == f"{base}/video.mp4" and tags["og:url"] == base
    assert tags["twitter:card"] == "summary_large_image"
    assert all(tags[name].startswith("http") for name in ("og:image", "og:video", "og:url"))
    assert tags["og:title"] == "Call: Aria and Sam &lt;b&gt;O&#x27;Neil&lt;/b&gt;"  # escaped, never markup
    assert "2:31" in tags["og:description"]
    assert f'poster="{base}/poster.jpg"' in html
    assert f'<track kind="captions" srclang="en" label="English" src="{base}/captions.vtt" default>' in html
    assert "<script" not in html and CALL not in html.replace(path, "")  # the call id is only inside the token
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in page.headers["x-robots-tag"]
    assert share.simulate_head(path).status_code == 200

    assert share.simulate_get(f"{path}/video.mp4").content == VIDEO
    ranged = share.simulate_get(f"{path}/video.mp4", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == VIDEO[10:20]
    poster = share.simulate_get(f"{path}/poster.jpg")
    assert poster.content == POSTER and poster.headers["content-type"] == "image/jpeg"
    captions = share.simulate_get(f"{path}/captions.vtt")
    assert captions.content == CAPTIONS and captions.headers["content-type"].startswith("text/vtt")


def test_a_call_without_poster_or_captions_gets_a_plain_card(share):
    path = make_link(share, OTHER)
    html = share.simulate_get(path).text
    assert 'content="summary"' in html and "og:image" not in html and "<track" not in html and 'poster=""' in html
    assert share.simulate_get(f"{path}/video.mp4").content == OTHER_VIDEO
    assert share.simulate_get(f"{path}/poster.jpg").status_code == 404
    assert share.simulate_get(f"{path}/captions.vtt").status_code == 404


def test_links_that_do_not_work_all_get_the_same_404(share, ingest_env):
    good = make_link(share)
    token = good.removeprefix("/v/")
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    other_call = make_link(share, OTHER).removeprefix("/v/")
    # A token for the other call's id with this call's signature: the signature covers the id.
    swapped = ShareSigner(API_TOKEN).sign(OTHER, Call.get_by_id(CALL).share_nonce, int(time.time()) + 600)
    expired = ShareSigner(API_TOKEN).sign(CALL, Call.get_by_id(CALL).share_nonce, int(time.time()) - 1)
    wrong_key = ShareSigner("k" * 40).sign(CALL, Call.get_by_id(CALL).share_nonce, int(time.time()) + 600)
    unknown = ShareSigner(API_TOKEN).sign("CA" + "8" * 32, "n", int(time.time()) + 600)
    bad = [flipped, swapped, expired, wrong_key, unknown, "x", token + "A", token[:-1]]
    answers = [share.simulate_get(f"/v/{t}") for t in bad]
    answers += [share.simulate_get(f"/v/{t}/video.mp4") for t in bad]
    answers += [share.simulate_get(f"/v/{token}/{name}") for name in ("recording.mp3", "video.MP4", "..", "%2e%2e", "caller.mp4")]
    answers.append(share.simulate_get(f"/v/{token}/video.mp4/x"))
    reference = answers[0]
    assert reference.status_code == 404 and "does not work" in reference.text
    for answer in answers[:-1]:
        expected = (404, reference.content, reference.headers["content-type"])
        assert (answer.status_code, answer.content, answer.headers["content-type"]) == expected
    assert answers[-1].status_code == 404 and VIDEO[:50] not in answers[-1].content
    assert share.simulate_get(f"/v/{other_call}/video.mp4").content == OTHER_VIDEO  # the other call's own link works

    # Revoked: every link of the call, at once; the other call's stays.
    assert share.simulate_delete(f"/calls/{CALL}/share", headers=AUTH).status_code == 204
    assert Call.get_by_id(CALL).share_nonce is None
    for suffix in ("", "/video.mp4", "/poster.jpg"):
        gone = share.simulate_get(f"{good}{suffix}")
        assert (gone.status_code, gone.content) == (404, reference.content)
    assert share.simulate_get(f"/v/{other_call}").status_code == 200
    # A new link works, the revoked one still does not.
    renewed = make_link(share)
    assert share.simulate_get(renewed).status_code == 200 and share.simulate_get(good).status_code == 404

    # Expiry from SHARE_LINK_TTL.
    ingest_env(SHARE_LINK_TTL="60")
    short = falcon.testing.TestClient(create_app())
    made = short.simulate_post(f"/calls/{CALL}/share", headers=AUTH).json
    left = time.mktime(time.strptime(made["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
    assert 55 <= left <= 61


def test_an_unfinished_call_cannot_be_shared_and_its_old_links_stop_working(share):
    refused = share.simulate_post(f"/calls/{UNFINISHED}/share", headers=AUTH)
    assert refused.status_code == 409
    path = make_link(share)
    Call.update(video_status=VideoStatus.GENERATING).where(Call.id == CALL).execute()  # re-rendering
    assert share.simulate_get(path).status_code == 404
    assert share.simulate_post("/calls/CA123/share", headers=AUTH).status_code == 400
    assert share.simulate_post(f"/calls/{'CA' + '9' * 32}/share", headers=AUTH).status_code == 404


def test_making_and_revoking_links_needs_the_token(share):
    for method in (share.simulate_post, share.simulate_delete):
        assert method(f"/calls/{CALL}/share").status_code == 401
        assert method(f"/calls/{CALL}/share", headers={"Authorization": "Bearer " + "x" * 40}).status_code == 401
    assert Call.get_by_id(CALL).share_nonce is None


def test_two_links_share_one_nonce_so_both_stay_valid(share):
    first, second = make_link(share), make_link(share)
    assert share.simulate_get(first).status_code == 200 and share.simulate_get(second).status_code == 200
