"""A share link in headless Chromium, against the app as deployed (gunicorn, PostgreSQL, RabbitMQ, moto's S3 server).

The video is a real MP4 with its poster attached as cover art, as the
compositor leaves it; the poster is the compositor's own drawing. Writes
test-artifacts/share-page.png (the page before playing) and share-poster.png,
for a person to look at.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from services.compositor.poster import PosterText, attach_command, build_poster_command
from services.ingest.web.share import ShareSigner
from shared import keys
from shared.assets import avatar_path
from shared.models import Call, Stage, VideoStatus, utcnow
from tests.services.ingest.conftest import API_TOKEN
from tests.support.browser import ARTIFACTS, chromium
from tests.support.calls import make_call
from tests.support.fake_twilio import account_sid, call_sid
from tests.support.media import color_video

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.rabbitmq]

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CAPTIONS = "WEBVTT\n\n00:00.000 --> 00:02.500\n<v Aria>Hello, this is Aria from callreel.\n"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def seed(s3, workdir) -> str:
    call = call_sid()
    video = color_video(workdir / "plain.mp4", "navy", size="960x480", duration=3.0, audio=True)
    poster = workdir / "poster.jpg"
    text = PosterText("Aria", "Sam O'Neil", "3 Dec 2026 · 14:05 UTC · 0:03")
    avatars = {side: avatar_path(side) for side in ("caller", "callee")}
    subprocess.run(build_poster_command(text, avatars, Path(FONT), poster, workdir), check=True, capture_output=True)
    covered = workdir / "final.mp4"
    subprocess.run(attach_command(video, poster, covered), check=True, capture_output=True)
    s3.upload_file(covered, keys.video_key(call), "video/mp4")
    s3.upload_file(poster, keys.poster_key(call), "image/jpeg")
    (workdir / "captions.vtt").write_text(CAPTIONS, encoding="utf-8")
    s3.upload_file(workdir / "captions.vtt", keys.captions_key(call), "text/vtt")
    make_call(
        id=call, video_status=VideoStatus.COMPLETED, stage=Stage.DONE, created_at=utcnow(), audio_duration=3.0, recording_channels=2,
        caller_name="Aria", callee_name="Sam O'Neil", account_sid=account_sid(),
        video_url=s3.object_url(keys.video_key(call)), poster_url=s3.object_url(keys.poster_key(call)),
        captions_url=s3.object_url(keys.captions_key(call)),
    )
    return call


@pytest.fixture
def served(serve, s3, tmp_path):
    call = seed(s3, tmp_path)
    return serve(public=True), call  # the share page's links point at this server


@pytest.fixture
def browser():
    with chromium() as launched:
        yield launched


def test_a_share_link_plays_with_its_poster_and_captions_until_revoked(served, browser):
    base, call = served
    made = httpx.post(f"{base}/calls/{call}/share", headers=AUTH)
    assert made.status_code == 201
    link = made.json()["url"]
    assert link.startswith(f"{base}/v/")

    context = browser.new_context(viewport={"width": 1100, "height": 760})  # no cookie, no token: a stranger
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    images: list[tuple[str, int, str]] = []
    page.on("response", lambda r: images.append((r.url, r.status, r.headers.get("content-type", ""))) if "poster" in r.url else None)
    opened = page.goto(link)
    assert opened.status == 200
    assert page.inner_text("h1") == "Aria and Sam O'Neil"
    # The poster: fetched, an image of the Open Graph size, shown by the player before it plays.
    page.wait_for_load_state("networkidle")
    assert (f"{link}/poster.jpg", 200, "image/jpeg") in images, images
    size = page.evaluate(
        """() => new Promise(done => { const i = new Image(); i.onload = () => done([i.naturalWidth, i.naturalHeight]);
           i.onerror = () => done(null); i.src = document.querySelector('#shared-video').poster; })"""
    )
    assert size == [1200, 630]
    og = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('meta[property^=og]')].map(m => [m.getAttribute('property'), m.content]))"
    )
    assert og["og:image"] == f"{link}/poster.jpg" and og["og:video"] == f"{link}/video.mp4" and og["og:type"] == "video.other"
    page.wait_for_function("() => document.querySelector('#shared-video').readyState >= 1", timeout=30_000)
    page.wait_for_timeout(800)  # cosmetic: the player's controls settle
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "share-page.png"), full_page=True)

    # The video plays (through the redirect to its presigned URL), with its captions track loaded and showing.
    page.wait_for_function("() => document.querySelector('#shared-video').readyState >= 2", timeout=30_000)
    page.evaluate("() => { const v = document.querySelector('#shared-video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#shared-video').currentTime > 0.3", timeout=30_000)
    state = page.evaluate("(() => { const v = document.querySelector('#shared-video'); return [v.videoWidth, v.duration, v.error]; })()")
    assert state[0] == 960 and 2.5 < state[1] < 3.5 and state[2] is None, state
    page.wait_for_function("() => document.querySelector('track').readyState === 2", timeout=10_000)
    cue = page.evaluate("document.querySelector('#shared-video').textTracks[0].cues[0].text")
    assert page.evaluate("document.querySelector('#shared-video').textTracks[0].mode") == "showing" and "Hello" in cue
    assert not problems, problems

    poster_page = context.new_page()
    poster_page.set_viewport_size({"width": 1200, "height": 630})
    poster_page.goto(f"{link}/poster.jpg")
    poster_page.screenshot(path=str(ARTIFACTS / "share-poster.png"))

    # Expired: signed properly, for this nonce, but its time has passed: 404, saying nothing of why.
    nonce = Call.get_by_id(call).share_nonce
    expired = f"{base}/v/{ShareSigner(API_TOKEN).sign(call, nonce, int(time.time()) - 5)}"
    gone = page.goto(expired)
    assert gone.status == 404
    expired_text = page.inner_text("main")
    assert "does not work" in expired_text and "expire" not in expired_text.lower()

    # Revoked: the link that played a moment ago is a 404 now, page and files alike, with the same words.
    assert httpx.delete(f"{base}/calls/{call}/share", headers=AUTH).status_code == 204
    revoked = page.goto(link)
    assert revoked.status == 404 and page.inner_text("main") == expired_text
    assert context.request.get(f"{link}/video.mp4").status == 404
    assert context.request.get(f"{link}/poster.jpg").status == 404
    # Nothing else is reachable from a link, nor without credentials.
    assert context.request.post(f"{base}/calls/{call}/share").status == 401
    assert context.request.get(f"{base}/calls/{call}").status == 401
    context.close()
