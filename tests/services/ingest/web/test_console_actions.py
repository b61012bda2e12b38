"""The console's history, bulk actions and named operators, through Falcon's test client (#28)."""

import re

import falcon.testing
import pytest
from dramatiq import Message

from services.ingest.app import create_app
from shared import events, keys
from shared.models import Call, Stage, VideoStatus
from shared.operators import hash_password
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call, sid
from tests.support.objects import put

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
ALICE_PASSWORD = "correct horse battery"


@pytest.fixture
def web(pg_db, stub_broker, ingest_env, s3):
    ingest_env(OPERATORS=f"alice:{hash_password(ALICE_PASSWORD, log2_n=10)}")
    return falcon.testing.TestClient(create_app())


def login(client, body: str) -> dict[str, str]:
    response = client.simulate_post("/ops/login", body=body, headers=FORM)
    assert response.status_code == 303, response.text
    return {"Cookie": f"callreel_session={response.cookies['callreel_session'].value}"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def kinds(call_id: str) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["operator"]) for e in events.history(call_id)]


def test_named_operators_sign_in_and_the_history_says_who_retried(web, stub_broker):
    form = web.simulate_get("/ops/login").text
    assert 'name="name"' in form and "Password or API token" in form
    wrong = web.simulate_post("/ops/login", body=f"name=alice&token={API_TOKEN}", headers=FORM)  # the token is not alice's password
    assert wrong.status_code == 401 and "do not match" in wrong.text and "callreel_session" not in wrong.cookies
    assert web.simulate_post("/ops/login", body="name=mallory&token=x", headers=FORM).status_code == 401

    alice, token = login(web, f"name=Alice&token={ALICE_PASSWORD.replace(' ', '+')}"), login(web, f"token={API_TOKEN}")
    first, second = sid(0xA1), sid(0xA2)
    for call in (first, second):
        make_call(call, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500", recording_channels=2)
    for call, who in ((first, alice), (second, token)):
        csrf = csrf_of(web.simulate_get(f"/ops/calls/{call}", headers=who).text)
        assert web.simulate_post(f"/ops/calls/{call}/retry", body=f"csrf={csrf}", headers={**FORM, **who}).status_code == 303
    assert kinds(first) == [("retried", "alice")] and kinds(second) == [("retried", "token")]
    page = web.simulate_get(f"/ops/calls/{first}", headers=alice).text
    assert '<td class="operator">alice</td>' in page and "Retried" in page

    # The host application reads the same history with the bearer token; without it, nothing.
    assert web.simulate_get(f"/calls/{first}/events").status_code == 401
    answer = web.simulate_get(f"/calls/{first}/events", headers=BEARER)
    assert answer.status_code == 200 and answer.json["id"] == first
    (event,) = answer.json["events"]
    assert event["kind"] == "retried" and event["operator"] == "alice" and event["stage"] == "ingest"
    assert re.fullmatch(r".+/\d+", event["worker"]) and event["at"].endswith("Z") and event["detail"] == {"was": "failed"}
    assert web.simulate_get(f"/calls/{sid(0xDEAD)}/events", headers=BEARER).status_code == 404
    for _ in (first, second):
        stub_broker.queues["ingest"].get_nowait()
        stub_broker.queues["ingest"].task_done()


def test_a_bulk_retry_is_confirmed_csrf_protected_and_refused_where_it_cannot_help(web, stub_broker):
    who = login(web, f"token={API_TOKEN}")
    fine, mono, gone, running = sid(0xB1), sid(0xB2), sid(0xB3), sid(0xB4)
    make_call(fine, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500", recording_channels=2)
    make_call(mono, video_status=VideoStatus.FAILED, stage=Stage.DONE, recording_channels=1,
              video_error_message="recording is mono: enable dual-channel recording in Twilio")
    make_call(gone, video_status=VideoStatus.FAILED, stage=Stage.DONE,
              video_error_message="Twilio still answered 404 Not Found for the recording 900 s after the callback")
    make_call(running, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION)
    listing = web.simulate_get("/ops/calls", headers=who).text
    assert 'id="bulk-form"' in listing and f'value="{fine}" form="bulk-form"' in listing
    csrf = csrf_of(listing)
    ticked = "&".join(f"id={c}" for c in (fine, mono, gone, running))

    refused = web.simulate_post("/ops/bulk", body=f"action=retry&{ticked}", headers={**FORM, **who})
    assert refused.status_code == 403
    review = web.simulate_post("/ops/bulk", body=f"csrf={csrf}&action=retry&scope=ids&{ticked}", headers={**FORM, **who})
    assert review.status_code == 200 and "1 of 4 call(s) can take this action" in review.text
    assert "not offered: the recording is mono" in review.text and "not offered: Twilio no longer has the recording" in review.text
    assert "not offered: still running" in review.text
    assert Call.get_by_id(fine).video_status == VideoStatus.FAILED and stub_broker.queues["ingest"].empty()  # nothing done yet
    confirm = re.search(r'<form method="post" action="/ops/bulk/run".*?</form>', review.text).group(0)
    assert re.findall(r'name="id" value="([^"]+)"', confirm) == [fine]

    assert web.simulate_post("/ops/bulk/run", body=f"action=retry&id={fine}", headers={**FORM, **who}).status_code == 403
    # Run with every call named (an old confirmation): each is checked again, and only the fine one moves.
    done = web.simulate_post("/ops/bulk/run", body=f"csrf={csrf}&action=retry&{ticked}", headers={**FORM, **who})
    assert done.status_code == 200 and "1 of 4 call(s) done, by token" in done.text
    assert Call.get_by_id(fine).video_status == VideoStatus.PENDING and Call.get_by_id(mono).video_status == VideoStatus.FAILED
    assert kinds(fine) == [("retried", "token")] and kinds(mono) == []
    assert Message.decode(stub_broker.queues["ingest"].get_nowait()).kwargs == {"call_id": fine}
    stub_broker.queues["ingest"].task_done()


def test_bulk_rerender_and_delete_media_of_all_matching_a_filter(web, stub_broker, s3):
    alice = login(web, f"name=alice&token={ALICE_PASSWORD.replace(' ', '+')}")
    done_calls = [sid(0xC0 + n) for n in range(3)]
    for call in done_calls:
        put(s3, keys.video_key(call), b"final", "video/mp4")
        make_call(call, video_status=VideoStatus.COMPLETED, stage=Stage.DONE, video_url=s3.object_url(keys.video_key(call)))
    make_call(sid(0xCF), video_status=VideoStatus.FAILED, stage=Stage.DONE)  # not matching the filter
    csrf = csrf_of(web.simulate_get("/ops/calls", query_string="status=completed", headers=alice).text)

    review = web.simulate_post("/ops/bulk", body=f"csrf={csrf}&action=rerender&scope=filter&status=completed", headers={**FORM, **alice})
    assert "3 of 3 call(s) can take this action" in review.text and "done by <strong>alice</strong>" in review.text
    ids = "&".join(f"id={c}" for c in done_calls)
    ran = web.simulate_post("/ops/bulk/run", body=f"csrf={csrf}&action=rerender&{ids}", headers={**FORM, **alice})
    assert "3 of 3 call(s) done, by alice" in ran.text
    sent = [Message.decode(stub_broker.queues["compositor"].get_nowait()) for _ in done_calls]
    assert sorted(m.kwargs["call_id"] for m in sent) == sorted(done_calls) and all(m.kwargs["rerender"] for m in sent)
    for _ in sent:
        stub_broker.queues["compositor"].task_done()
    assert kinds(done_calls[0]) == [("operator.rerender", "alice")]

    ran = web.simulate_post("/ops/bulk/run", body=f"csrf={csrf}&action=delete_media&id={done_calls[0]}", headers={**FORM, **alice})
    assert "1 of 1 call(s) done" in ran.text
    assert not s3.exists(keys.video_key(done_calls[0])) and s3.exists(keys.video_key(done_calls[1]))
    assert Call.get_by_id(done_calls[0]).video_url is None
    assert kinds(done_calls[0])[-1] == ("operator.delete_media", "alice")
    again = web.simulate_post("/ops/bulk", body=f"csrf={csrf}&action=rerender&id={done_calls[0]}", headers={**FORM, **alice})
    assert "not offered: its media was deleted" in again.text and 'id="bulk-nothing"' in again.text


def test_the_live_endpoints_send_fragments_while_a_call_is_in_flight(web):
    who = login(web, f"token={API_TOKEN}")
    running, ended = sid(0xD1), sid(0xD2)
    make_call(running, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION)
    make_call(ended, video_status=VideoStatus.COMPLETED, stage=Stage.DONE)
    page = web.simulate_get(f"/ops/calls/{running}", headers=who).text
    assert f'data-live-url="/ops/calls/{running}/live"' in page and "<noscript><meta http-equiv=\"refresh\"" in page
    assert 'id="live"' not in web.simulate_get(f"/ops/calls/{ended}", headers=who).text
    live = web.simulate_get(f"/ops/calls/{running}/live", headers=who)
    assert live.json["in_flight"] is True and live.json["status"] == "generating"
    assert set(live.json["parts"]) == {"live-facts", "live-timeline", "live-events"} and "generation" in live.json["parts"]["live-facts"]
    Call.update(video_status=VideoStatus.COMPLETED, stage=Stage.DONE).where(Call.id == running).execute()
    assert web.simulate_get(f"/ops/calls/{running}/live", headers=who).json["in_flight"] is False
    rows = web.simulate_get("/ops/live", query_string=f"id={running}&id={ended}&id=../x", headers=who).json
    assert set(rows["rows"]) == {running, ended} and f'data-call-id="{running}"' in rows["rows"][running]
    assert web.simulate_get("/ops/live", query_string=f"id={running}").status_code == 303  # no session: the login form
