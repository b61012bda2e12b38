"""The operator page through Falcon's test client: login, list, call page, retry with CSRF, logout, escaping, headers."""

import datetime as dt
import re
import time
from urllib.parse import parse_qs, urlsplit

import falcon.testing
import pytest
from dramatiq import Message

from services.ingest.app import create_app
from services.ingest.web.session import SessionSigner
from shared import keys
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call, sid
from tests.support.objects import put

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
T0 = dt.datetime(2026, 11, 26, 3, 0, 0)


@pytest.fixture
def web(pg_db, stub_broker, ingest_env, s3):
    ingest_env(OPERATOR_SESSION_MAX_AGE="7200")
    return falcon.testing.TestClient(create_app())


def login(client) -> dict[str, str]:
    response = client.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers=FORM)
    assert response.status_code == 303, response.text
    return {"Cookie": f"callreel_session={response.cookies['callreel_session'].value}"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_pages_send_a_person_to_the_login_form_and_back(web):
    call = sid(1)
    make_call(call)
    page = web.simulate_get(f"/ops/calls/{call}", query_string="x=1")
    assert page.status_code == 303
    location = urlsplit(page.headers["location"])
    assert location.path == "/ops/login" and parse_qs(location.query)["next"] == [f"/ops/calls/{call}?x=1"]
    assert web.simulate_get("/").headers["location"] == "/ops/overview"

    form = web.simulate_get("/ops/login", query_string=location.query)
    assert form.status_code == 200 and f'name="next" value="/ops/calls/{call}?x=1"' in form.text
    assert 'type="password"' in form.text

    signed_in = web.simulate_post("/ops/login", body=f"token={API_TOKEN}&next=%2Fops%2Fcalls%2F{call}%3Fx%3D1", headers=FORM)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == f"/ops/calls/{call}?x=1"
    cookie = signed_in.cookies["callreel_session"]
    assert cookie.secure and cookie.http_only and cookie.same_site == "Strict"
    assert cookie.max_age == 7200 and cookie.path == "/"
    # Signed in, the login form sends a person on.
    again = web.simulate_get("/ops/login", headers={"Cookie": f"callreel_session={cookie.value}"})
    assert again.status_code == 303 and again.headers["location"] == "/ops/overview"


def test_a_wrong_token_is_refused_and_sets_no_cookie(web):
    response = web.simulate_post("/ops/login", body="token=guess&next=https%3A%2F%2Fevil.example%2F", headers=FORM)
    assert response.status_code == 401 and "not this service&#x27;s API token" in response.text
    assert "callreel_session" not in response.cookies
    assert 'name="next" value="/ops/overview"' in response.text  # the off-site destination is dropped
    assert web.simulate_post("/ops/login", body="token=", headers=FORM).status_code == 401
    assert web.simulate_post("/ops/login", body="token=" + "x" * 5000, headers=FORM).status_code == 413
    assert web.simulate_post("/ops/login", body=f'{{"token": "{API_TOKEN}"}}', headers={"Content-Type": "application/json"}).status_code == 415


def test_forged_and_expired_cookies_lead_to_the_login_form(web):
    expired, _ = SessionSigner(API_TOKEN, 60, clock=lambda: time.time() - 3600).issue()
    foreign, _ = SessionSigner("someone-else-" + "q" * 20, 7200).issue()
    for value in (expired, foreign, "garbage"):
        response = web.simulate_get("/ops/calls", headers={"Cookie": f"callreel_session={value}"})
        assert response.status_code == 303 and response.headers["location"].startswith("/ops/login")


def test_without_an_api_token_the_page_is_off(pg_db, stub_broker, ingest_env):
    ingest_env(CALLREEL_API_TOKEN="")
    client = falcon.testing.TestClient(create_app())
    assert client.simulate_get("/ops/login").status_code == 403
    assert client.simulate_post("/ops/login", body="token=", headers=FORM).status_code == 403


def test_the_list_shows_each_call_with_its_numbers_filters_and_pages(web):
    now = utcnow()
    make_call(sid(1), recording_sid=sid(1, "RE"), video_status=VideoStatus.COMPLETED, stage=Stage.DONE, audio_duration=75.4,
                created_at=now - dt.timedelta(hours=3), video_processing_duration=125, video_processing_started_at=now - dt.timedelta(hours=3))
    make_call(sid(2), video_status=VideoStatus.FAILED, stage=Stage.DONE, recording_duration=12,
                video_error_message='<img src=x onerror="alert(1)">', created_at=now - dt.timedelta(minutes=5))
    make_call(sid(3), video_status=VideoStatus.GENERATING, stage=Stage.GENERATION, created_at=now - dt.timedelta(seconds=30),
                video_processing_started_at=now - dt.timedelta(seconds=20))
    cookie = login(web)

    page = web.simulate_get("/ops/calls", headers=cookie)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    rows = re.findall(r'<tr class="call" data-call-id="(CA[0-9a-f]+)" data-status="(\w+)">', page.text)
    assert rows == [(sid(3), "generating"), (sid(2), "failed"), (sid(1), "completed")]
    done = page.text.split(f'data-call-id="{sid(1)}"')[1].split("</tr>")[0]
    assert "1 m 15 s" in done and "3 h ago" in done and "2 m 05 s" in done and sid(1, "RE") in done
    running = page.text.split(f'data-call-id="{sid(3)}"')[1].split("</tr>")[0]
    assert ">generation<" in running and "30 s ago" in running
    # A hostile error message is text, never markup.
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page.text
    # The backlog, from the database without the management API.
    backlog = page.text.split('id="backlog"')[1].split("</section>")[0]
    assert re.search(r'data-stage="generation"><td><a href="/ops/calls\?stage=generation">generation</a></td><td class="num">1</td>', backlog)

    failed = web.simulate_get("/ops/calls", query_string="status=failed", headers=cookie)
    assert re.findall(r'data-call-id="(CA[0-9a-f]+)"', failed.text) == [sid(2)]
    assert '<option value="failed" selected>' in failed.text
    found = web.simulate_get("/ops/calls", query_string=f"q={sid(1, 'RE')[:20]}", headers=cookie)
    assert re.findall(r'data-call-id="(CA[0-9a-f]+)"', found.text) == [sid(1)]

    first = web.simulate_get("/ops/calls", query_string="limit=2", headers=cookie)
    older = re.search(r'<a id="older" href="/ops/calls\?([^"]+)">', first.text).group(1).replace("&amp;", "&")
    second = web.simulate_get("/ops/calls", query_string=older, headers=cookie)
    assert re.findall(r'data-call-id="(CA[0-9a-f]+)"', second.text) == [sid(1)] and 'id="older"' not in second.text


def test_bad_filters_are_a_400_page_that_says_why(web):
    cookie = login(web)
    page = web.simulate_get("/ops/calls", query_string="status=bogus&q=%3Cscript%3E", headers=cookie)
    assert page.status_code == 400
    assert "status must be one of" in page.text and "q must be the start of a call id" in page.text
    assert "<script>" not in page.text


def _finished_call(s3, status=VideoStatus.PARTIAL) -> str:
    call = sid(0xC0FFEE)
    put(s3, keys.video_key(call), b"final", "video/mp4")
    put(s3, keys.segment_video_key(call, "caller", 0), b"caller", "video/mp4")
    make_call(
        call, recording_sid=sid(9, "RE"), video_status=status, stage=Stage.DONE, created_at=T0,
        video_url=s3.object_url(keys.video_key(call)), caller_video_url=s3.object_url(keys.segment_video_key(call, "caller", 0)),
        caller_state=SideState.GENERATED, callee_state=SideState.FAILED, callee_error="fal job failed 3 times",
        video_error_message="callee: fal job failed 3 times", audio_duration=14.0, recording_channels=2,
        ingest_started_at=T0, ingest_finished_at=T0 + dt.timedelta(seconds=3), ingest_attempts=1,
        audio_started_at=T0 + dt.timedelta(seconds=4), audio_finished_at=T0 + dt.timedelta(seconds=6), audio_attempts=1,
        generation_started_at=T0 + dt.timedelta(seconds=7), generation_finished_at=T0 + dt.timedelta(seconds=97), generation_attempts=1,
        compositor_started_at=T0 + dt.timedelta(seconds=98), compositor_finished_at=T0 + dt.timedelta(seconds=110), compositor_attempts=1,
        video_processing_started_at=T0, video_processing_completed_at=T0 + dt.timedelta(seconds=110), video_processing_duration=110,
    )
    Segment.create(call_id=call, side="caller", index=0, start=0, end=14, state=SegmentState.COMPLETED, fal_request_id="req-a",
                   attempts=1, video_key=keys.segment_video_key(call, "caller", 0))
    Segment.create(call_id=call, side="callee", index=0, start=0, end=14, state=SegmentState.FAILED, fal_request_id="req-b",
                   attempts=3, error="fal job failed 3 times")
    return call


def test_the_call_page_shows_videos_timeline_error_and_segments(web, s3):
    call = _finished_call(s3)
    page = web.simulate_get(f"/ops/calls/{call}", headers=login(web))
    assert page.status_code == 200
    text = page.text
    final = re.search(r'<video id="final-video" controls preload="metadata" playsinline src="([^"]+)">', text).group(1)
    assert final.startswith(s3.endpoint_url) and "X-Amz-Signature" in final
    assert 'id="caller-video"' in text and 'id="callee-video"' not in text
    assert '<span class="badge status-partial" id="call-status">partial</span>' in text
    assert '<div class="error-box" id="call-error">callee: fal job failed 3 times</div>' in text
    generation = text.split('<tr data-stage="generation">')[1].split("</tr>")[0]
    assert "2026-11-26 03:00:07 UTC" in generation and "2026-11-26 03:01:37 UTC" in generation and "1 m 30 s" in generation
    assert '<rect x="6.36"' in generation  # starts 7 s into a 110 s call
    segments = text.split('id="segments"')[1].split("</table>")[0]
    callee = segments.split('<tr data-side="callee" data-index="0">')[1].split("</tr>")[0]
    assert '<code>req-b</code></td><td class="num">3</td>' in callee and "fal job failed 3 times" in callee
    caller = segments.split('<tr data-side="caller" data-index="0">')[1].split("</tr>")[0]
    assert '<code>req-a</code></td><td class="num">1</td>' in caller and ">video</a>" in caller
    assert 'id="retry"' in text and 'action="/ops/calls/' + call + '/retry"' in text
    assert "1 m 50 s" in text  # total processing time
    # The presigned origin is the only other place media may come from; scripts only from here.
    csp = page.headers["content-security-policy"]
    assert f"media-src 'self' {s3.endpoint_url}" in csp and "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"


def test_the_final_video_shows_its_poster_on_the_page_and_in_the_api(web, s3):
    call = _finished_call(s3)
    put(s3, keys.poster_key(call), b"\xff\xd8poster", "image/jpeg")
    Call.update(poster_url=s3.object_url(keys.poster_key(call))).where(Call.id == call).execute()
    page = web.simulate_get(f"/ops/calls/{call}", headers=login(web))
    poster = re.search(r'<video id="final-video" [^>]*src="[^"]+" poster="([^"]+)">', page.text).group(1)
    assert f"/videos/{call}.jpg" in poster and "X-Amz-Signature" in poster
    assert f"img-src 'self' {s3.endpoint_url};" in page.headers["content-security-policy"]
    assert 'id="caller-video" controls preload="metadata" playsinline src="' in page.text  # side videos: no poster
    api = web.simulate_get(f"/calls/{call}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json
    assert f"/videos/{call}.jpg" in api["poster_url"] and "X-Amz-Signature" in api["poster_url"]
    # Only the call's own poster key is ever signed, whatever the column holds.
    Call.update(poster_url=s3.object_url(keys.poster_key(sid(1)))).where(Call.id == call).execute()
    assert web.simulate_get(f"/calls/{call}", headers={"Authorization": f"Bearer {API_TOKEN}"}).json["poster_url"] is None


@pytest.mark.parametrize("status", [VideoStatus.COMPLETED, VideoStatus.GENERATING])
def test_no_retry_button_unless_failed_or_partial(web, s3, status):
    call = _finished_call(s3, status)
    assert 'id="retry"' not in web.simulate_get(f"/ops/calls/{call}", headers=login(web)).text


def test_unknown_and_malformed_calls_are_html_error_pages(web):
    cookie = login(web)
    missing = web.simulate_get(f"/ops/calls/{sid(404)}", headers=cookie)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "No such call" in missing.text
    bad = web.simulate_get("/ops/calls/%3Cscript%3E", headers=cookie)
    assert bad.status_code == 400 and "<script>" not in bad.text


def test_retry_needs_the_sessions_csrf_token(web, stub_broker):
    call = sid(0xFA11)
    make_call(call, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500")
    mine, theirs = login(web), login(web)
    token = csrf_of(web.simulate_get(f"/ops/calls/{call}", headers=mine).text)
    other_token = csrf_of(web.simulate_get(f"/ops/calls/{call}", headers=theirs).text)

    for body, cookie in (("", mine), ("csrf=", mine), (f"csrf={other_token}", mine), (f"csrf={token}", {})):
        refused = web.simulate_post(f"/ops/calls/{call}/retry", body=body, headers={**FORM, **cookie})
        assert refused.status_code in (303, 403), body
        if cookie:
            assert refused.status_code == 403 and "reload the page" in refused.text
        else:  # no session: to the login form, which then leads to the list, not to the retry
            assert refused.headers["location"] == "/ops/login?next=/ops/overview"
    assert Call.get_by_id(call).video_status == VideoStatus.FAILED and stub_broker.queues["ingest"].empty()

    done = web.simulate_post(f"/ops/calls/{call}/retry", body=f"csrf={token}", headers={**FORM, **mine})
    assert done.status_code == 303 and done.headers["location"] == f"/ops/calls/{call}?retried=ingest"
    assert Call.get_by_id(call).video_status == VideoStatus.PENDING
    assert Message.decode(stub_broker.queues["ingest"].get_nowait()).kwargs == {"call_id": call}
    stub_broker.queues["ingest"].task_done()  # taken: a later broker.join("ingest") must not wait for it
    after = web.simulate_get(f"/ops/calls/{call}", query_string="retried=ingest", headers=mine)
    assert "Retry sent: the call runs again from the ingest stage." in after.text
    assert '<span class="badge status-pending" id="call-status">pending</span>' in after.text and 'id="retry"' not in after.text

    # A second press (an old tab): the call is no longer failed, and the page says so.
    again = web.simulate_post(f"/ops/calls/{call}/retry", body=f"csrf={token}", headers={**FORM, **mine})
    assert again.status_code == 409 and "only failed or partial calls (or failed transcriptions) are retried" in again.text


def test_logout_ends_the_session_in_the_browser(web):
    cookie = login(web)
    token = csrf_of(web.simulate_get("/ops/calls", headers=cookie).text)
    assert web.simulate_post("/ops/logout", body="csrf=wrong", headers={**FORM, **cookie}).status_code == 403
    out = web.simulate_post("/ops/logout", body=f"csrf={token}", headers={**FORM, **cookie})
    assert out.status_code == 303 and out.headers["location"] == "/ops/login"
    cleared = out.cookies["callreel_session"]
    assert cleared.value == "" and cleared.expires < dt.datetime.now(dt.timezone.utc)


def test_static_files_and_nothing_else(web):
    css = web.simulate_get("/ops/static/operator.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and ".badge" in css.text
    js = web.simulate_get("/ops/static/operator.js")
    assert js.headers["content-type"].startswith("text/javascript") and "data-confirm" in js.text
    icon = web.simulate_get("/ops/static/favicon.svg")
    assert icon.headers["content-type"] == "image/svg+xml" and icon.text.startswith("<svg")
    for name in ("operator.py", "..%2F..%2Fapp.py", "__init__.py"):
        assert web.simulate_get(f"/ops/static/{name}").status_code == 404
