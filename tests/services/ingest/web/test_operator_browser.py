"""The operator page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), against the app
as deployed: gunicorn with deploy/gunicorn.conf.py, PostgreSQL holding calls in every state, RabbitMQ (a
private vhost, with its management API for the backlog) and real MP4s in moto's S3 server, played through
presigned URLs.

Writes screenshots of a call page and of the list to test-artifacts/operator-call-page.png and
operator-call-list.png, for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import httpx
import pytest

from shared import keys
from shared.models import Call, Segment, SegmentState, SideState, Stage, TranscriptStatus, VideoStatus, utcnow
from tests.services.ingest.conftest import API_TOKEN
from tests.support.browser import ARTIFACTS, chromium
from tests.support.calls import make_call
from tests.support.fake_twilio import account_sid, call_sid, recording_sid
from tests.support.media import color_video
from tests.support.objects import put

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.rabbitmq_management]

#: The words of the finished calls (their videos are 3 s long): a line in Arabic, one with emoji, one hostile.
TRANSCRIPT = [
    {"speaker": "caller", "start": 0.2, "end": 1.2, "text": "Hello, this is the clinic. How can I help?"},
    {"speaker": "callee", "start": 1.4, "end": 2.2, "text": "مرحبا، أريد موعدا 🙂"},
    {"speaker": "caller", "start": 2.3, "end": 2.9, "text": "<script>alert('not run')</script> Of course."},
]


def seed_calls(s3, workdir: Path) -> dict[str, str]:
    """A call in every state the pipeline can leave one in; real MP4s for the finished ones."""
    now = utcnow()
    ago = lambda seconds: now - dt.timedelta(seconds=seconds)  # noqa: E731
    final = color_video(workdir / "final.mp4", "navy", size="640x240", duration=3.0, audio=True)
    caller = color_video(workdir / "caller.mp4", "darkgreen", size="320x240", duration=3.0)
    callee = color_video(workdir / "callee.mp4", "maroon", size="320x240", duration=3.0)
    ids = {name: call_sid() for name in ("arrived", "audio", "generating", "composing", "completed", "partial", "failed", "mono")}

    def stages(call_start: float, *done: str, running: str | None = None) -> dict:
        """Start/finish columns: each stage in ``done`` took a few seconds, one after the other."""
        columns, t = {}, call_start
        for stage, seconds in zip(done, (2, 1.5, 41, 8)):
            columns.update({f"{stage}_started_at": ago(t), f"{stage}_finished_at": ago(t - seconds), f"{stage}_attempts": 1})
            t -= seconds + 0.5
        if running:
            columns.update({f"{running}_started_at": ago(t), f"{running}_attempts": 1})
        return columns

    common = lambda n, start: dict(  # noqa: E731
        recording_sid=recording_sid(), account_sid=account_sid(), recording_channels=2, created_at=ago(start + 1),
        video_processing_started_at=ago(start), recording_duration=n,
    )
    make_call(ids["arrived"], video_status=VideoStatus.PENDING, stage=Stage.INGEST, **common(31, 4))
    make_call(ids["audio"], video_status=VideoStatus.PENDING, stage=Stage.AUDIO, **common(45, 20),
                **stages(20, "ingest", running="audio"))
    make_call(ids["generating"], video_status=VideoStatus.GENERATING, stage=Stage.GENERATION, **common(62, 90),
                **stages(90, "ingest", "audio", running="generation"), caller_state=SideState.GENERATING, callee_state=SideState.SILENT)
    Segment.create(call_id=ids["generating"], side="caller", index=0, start=0, end=29.5, state=SegmentState.COMPLETED,
                   fal_request_id="0f1e2d3c-caller-000", attempts=1, submitted_at=ago(80), finished_at=ago(20))
    Segment.create(call_id=ids["generating"], side="caller", index=1, start=29.5, end=61.9, state=SegmentState.SUBMITTED,
                   fal_request_id="4b5a6978-caller-001", attempts=2, submitted_at=ago(60), progress="IN_PROGRESS: generating frames")
    make_call(ids["composing"], video_status=VideoStatus.GENERATING, stage=Stage.COMPOSITOR, **common(18, 300),
                **stages(300, "ingest", "audio", "generation", running="compositor"), caller_state=SideState.LOCAL, callee_state=SideState.LOCAL)

    for name, status in (("completed", VideoStatus.COMPLETED), ("partial", VideoStatus.PARTIAL)):
        call, began = ids[name], 3600 if status == VideoStatus.COMPLETED else 4200
        s3.upload_file(final, keys.video_key(call), "video/mp4")
        s3.upload_file(caller, keys.segment_video_key(call, "caller", 0), "video/mp4")
        side = {"caller_video_url": s3.object_url(keys.segment_video_key(call, "caller", 0)), "caller_state": SideState.GENERATED}
        if status == VideoStatus.COMPLETED:
            s3.upload_file(callee, keys.segment_video_key(call, "callee", 0), "video/mp4")
            side.update(callee_video_url=s3.object_url(keys.segment_video_key(call, "callee", 0)), callee_state=SideState.GENERATED)
        else:
            side.update(callee_state=SideState.FAILED, callee_error="fal job failed 3 times: 500 from the model")
        make_call(
            call, video_status=status, stage=Stage.DONE, **common(3, began), **stages(began, "ingest", "audio", "generation", "compositor"),
            audio_duration=3.0, video_url=s3.object_url(keys.video_key(call)),
            video_processing_completed_at=ago(began - 53), video_processing_duration=53,
            video_error_message=None if status == VideoStatus.COMPLETED else "callee: fal job failed 3 times: 500 from the model",
            transcript_status=TranscriptStatus.SUPPLIED, transcript_url=s3.object_url(keys.transcript_key(call)),
            **side,
        )
        put(s3, keys.transcript_key(call), json.dumps({"turns": TRANSCRIPT}).encode(), "application/json")
        Segment.create(call_id=call, side="caller", index=0, start=0, end=3.0, state=SegmentState.COMPLETED,
                       fal_request_id=f"9a8b7c6d-{name}-caller", attempts=1, video_key=keys.segment_video_key(call, "caller", 0),
                       submitted_at=ago(began - 5), finished_at=ago(began - 35))
        Segment.create(call_id=call, side="callee", index=0, start=0, end=3.0,
                       state=SegmentState.COMPLETED if status == VideoStatus.COMPLETED else SegmentState.FAILED,
                       fal_request_id=f"1a2b3c4d-{name}-callee", attempts=1 if status == VideoStatus.COMPLETED else 3,
                       error=None if status == VideoStatus.COMPLETED else "500 from the model",
                       submitted_at=ago(began - 5), finished_at=ago(began - 37))
    make_call(ids["failed"], video_status=VideoStatus.FAILED, stage=Stage.DONE, **common(25, 7200), ingest_started_at=ago(7200),
                ingest_attempts=4, video_error_message="Twilio answered 404 for the recording for 120 s",
                video_processing_completed_at=ago(7080), video_processing_duration=120)
    make_call(ids["mono"], video_status=VideoStatus.FAILED, stage=Stage.DONE, **common(9, 9000), **stages(9000, "ingest", running="audio"),
                video_error_message="recording is mono: enable dual-channel recording in Twilio",
                video_processing_completed_at=ago(8995), video_processing_duration=5)
    return ids


@pytest.fixture
def served(serve, s3, tmp_path):
    """gunicorn serving the ingest app on a free port, as deployed."""
    ids = seed_calls(s3, tmp_path)
    return serve(RABBITMQ_MANAGEMENT_URL="http://guest:guest@127.0.0.1:15672"), ids


@pytest.fixture
def browser():
    with chromium() as launched:
        yield launched


def listed(page) -> list[str]:
    return page.locator("tr.call").evaluate_all("rows => rows.map(r => r.dataset.callId)")


def test_an_operator_logs_in_filters_watches_a_video_and_retries_a_failed_call(served, browser):
    base, ids = served
    context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    # Not signed in: the page sends a person to the login form, and brings them back after.
    page.goto(f"/ops/calls/{ids['completed']}")
    assert page.url.startswith(f"{base}/ops/login?next=")
    page.fill("#token", "not-the-token")
    page.click("#login-form button[type=submit]")
    assert "not this service's API token" in page.inner_text("main")
    page.fill("#token", API_TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base}/ops/calls/{ids['completed']}")
    problems.clear()  # the refused login above was a 401, on purpose
    cookie = next(c for c in context.cookies() if c["name"] == "callreel_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

    # The list: every call, newest first, with the backlog from RabbitMQ's management API.
    page.goto("/ops/calls")
    expected = ["arrived", "audio", "generating", "composing", "completed", "partial", "failed", "mono"]
    assert listed(page) == [ids[name] for name in expected]
    assert "RabbitMQ queues" in page.inner_text("#backlog")
    assert page.locator("#backlog tr[data-stage=generation] td").nth(1).inner_text() == "1"
    row = page.locator(f"tr[data-call-id={ids['partial']}]")
    assert "partial" in row.inner_text() and "53.0 s" in row.inner_text() and "1 h ago" in row.inner_text()

    # Filter by status, then by stage, then search a recording SID.
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "operator-call-list.png"), full_page=True)
    page.select_option("#filter-status", "failed")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r".*status=failed.*"))
    assert listed(page) == [ids["failed"], ids["mono"]]
    page.goto("/ops/calls")
    page.select_option("#filter-stage", "generation")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r".*stage=generation.*"))
    assert listed(page) == [ids["generating"]]
    recording = httpx.get(f"{base}/calls/{ids['audio']}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json()["recording"]["sid"]
    page.goto("/ops/calls")
    page.fill("#filter-q", recording[:14])
    page.click("#filters button[type=submit]")
    assert listed(page) == [ids["audio"]]

    # Open a call from the list: the final video loads from its presigned URL and plays.
    page.goto("/ops/calls?status=completed")
    page.click(f"tr[data-call-id={ids['completed']}] a")
    page.wait_for_url(f"{base}/ops/calls/{ids['completed']}")
    assert page.evaluate("document.querySelector('#final-video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')") != ""
    page.wait_for_function("() => document.querySelector('#final-video').readyState >= 2", timeout=30_000)
    page.evaluate("() => { const v = document.querySelector('#final-video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#final-video').currentTime > 0.3", timeout=30_000)
    state = page.evaluate("(() => { const v = document.querySelector('#final-video'); return [v.readyState, v.videoWidth, v.duration, v.error]; })()")
    assert state[0] >= 2 and state[1] == 640 and 2.5 < state[2] < 3.5 and state[3] is None, state
    page.evaluate("document.querySelector('#final-video').pause()")
    for side in ("caller", "callee"):
        page.wait_for_function(f"() => document.querySelector('#{side}-video').readyState >= 1", timeout=30_000)
    # The transcript under the video: a line's time seeks the player (operator.js), and the line is marked as it plays.
    turns = page.locator("#transcript li.turn")
    assert turns.count() == 3
    assert "مرحبا" in turns.nth(1).inner_text() and "<script>alert('not run')</script>" in turns.nth(2).inner_text()
    turns.nth(1).locator("a.seek").click()
    page.wait_for_function("() => Math.abs(document.querySelector('#final-video').currentTime - 1.4) < 0.05", timeout=10_000)
    assert page.url == f"{base}/ops/calls/{ids['completed']}"  # seeked in place, not navigated to the video
    page.wait_for_function("() => document.querySelector('#turn-2').classList.contains('now')", timeout=10_000)
    turns.nth(0).locator("a.seek").click()
    page.wait_for_function("() => Math.abs(document.querySelector('#final-video').currentTime - 0.2) < 0.05", timeout=10_000)
    assert page.locator("#timeline tr[data-stage=generation]").inner_text().count("UTC") == 2
    assert "9a8b7c6d-completed-caller" in page.inner_text("#segments")
    assert page.locator("#retry").count() == 0

    # The artefact a person looks at: a partial call, with its error, videos, timeline and segments.
    page.goto(f"/ops/calls/{ids['partial']}")
    page.wait_for_function("() => document.querySelector('#final-video').readyState >= 2", timeout=30_000)
    page.evaluate("() => { const v = document.querySelector('#final-video'); v.currentTime = 1.5; }")
    page.wait_for_function("() => { const v = document.querySelector('#final-video'); return !v.seeking && v.readyState >= 2; }")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)  # cosmetic: Chromium hides a player's loading spinner at the end of its animation cycle
    page.screenshot(path=str(ARTIFACTS / "operator-call-page.png"), full_page=True)
    assert "callee: fal job failed 3 times" in page.inner_text("#call-error")

    # Retry a failed call: confirm, and its status changes on the page.
    page.goto(f"/ops/calls/{ids['failed']}")
    assert page.inner_text("#call-status") == "failed"
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#retry")
    page.wait_for_url(f"{base}/ops/calls/{ids['failed']}?retried=ingest")
    assert dialogs and ids["failed"] in dialogs[0]
    assert page.inner_text("#call-status") == "pending"
    assert page.inner_text("#call-stage") == "ingest"
    assert "Retry sent" in page.inner_text("main") and page.locator("#retry").count() == 0
    assert Call.get_by_id(ids["failed"]).video_status == VideoStatus.PENDING

    # Log out: the page is closed again.
    page.click(".account button")
    page.wait_for_url(f"{base}/ops/login")
    page.goto("/ops/calls")
    assert page.url.startswith(f"{base}/ops/login")
    assert not problems, problems
    context.close()


def test_unauthenticated_requests_are_refused(served, browser):
    base, ids = served
    context = browser.new_context(base_url=base)
    try:
        api = context.request.get(f"/calls/{ids['completed']}")
        assert api.status == 401 and "video_url" not in api.text()
        assert context.request.get("/calls").status == 401
        assert context.request.post(f"/calls/{ids['failed']}/retry").status == 401
        assert context.request.get(f"/media/{keys.video_key(ids['completed'])}").status == 401
        # A retry posted from anywhere without a session goes to the login form and changes nothing.
        posted = context.request.post(f"/ops/calls/{ids['failed']}/retry", form={"csrf": "x"}, max_redirects=0)
        assert posted.status == 303 and posted.headers["location"].startswith("/ops/login")
        page = context.new_page()
        page.goto(f"/ops/calls/{ids['completed']}")
        assert page.url.startswith(f"{base}/ops/login")
        assert page.locator("video").count() == 0 and ids["completed"] not in page.content().split("next")[0]
    finally:
        context.close()
    assert Call.get_by_id(ids["failed"]).video_status == VideoStatus.FAILED
