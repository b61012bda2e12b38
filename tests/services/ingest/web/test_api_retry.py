"""``POST /calls/{callId}/retry`` (``shared.retry.retry_call`` behind the token) and the segments of ``GET /calls/{callId}``."""

import datetime as dt
import urllib.request

import dramatiq
import falcon.testing
import pytest
from dramatiq import Message

from services.ingest.app import create_app
from shared import keys
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call
from tests.support.objects import put

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALL = "CA" + "7" * 32


@pytest.fixture
def api(pg_db, stub_broker, ingest_env):
    return falcon.testing.TestClient(create_app())


def sent(broker, queue):
    """Take the messages enqueued on ``queue``, marking each done so a later ``broker.join`` does not wait for it."""
    q = broker.queues.get(queue)
    messages = []
    while q is not None and not q.empty():
        messages.append(Message.decode(q.get_nowait()))
        q.task_done()
    return [(m.actor_name, m.kwargs) for m in messages]


def test_a_failed_download_is_retried_from_ingest(api, stub_broker):
    make_call(CALL, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_error_message="Twilio said 500")
    response = api.simulate_post(f"/calls/{CALL}/retry", headers=AUTH)
    assert response.status_code == 202
    assert response.json == {"id": CALL, "retried_from": "ingest", "status": "pending", "stage": "ingest"}
    assert sent(stub_broker, "ingest") == [("download_recording", {"call_id": CALL})]
    call = Call.get_by_id(CALL)
    assert (call.video_status, call.video_error_message) == (VideoStatus.PENDING, None)


def test_a_partial_call_regenerates_its_failed_side(api, stub_broker):
    now = utcnow()
    make_call(
        CALL, video_status=VideoStatus.PARTIAL, stage=Stage.DONE, ingest_finished_at=now, audio_finished_at=now,
        compositor_finished_at=now, caller_state=SideState.GENERATED, callee_state=SideState.FAILED,
    )
    Segment.create(call_id=CALL, side="callee", index=0, start=0, end=3, state=SegmentState.FAILED, attempts=3)
    response = api.simulate_post(f"/calls/{CALL}/retry", headers=AUTH)
    assert response.status_code == 202 and response.json["retried_from"] == "generation"
    assert sorted(kw["side"] for _, kw in sent(stub_broker, "generation")) == ["callee", "caller"]


@pytest.mark.parametrize("status", [VideoStatus.COMPLETED, VideoStatus.GENERATING, VideoStatus.PENDING])
def test_calls_that_are_not_failed_or_partial_are_a_409(api, stub_broker, status):
    make_call(CALL, video_status=status)
    response = api.simulate_post(f"/calls/{CALL}/retry", headers=AUTH)
    assert response.status_code == 409
    assert "only failed or partial calls are retried" in response.json["description"]
    assert sent(stub_broker, "ingest") == [] and Call.get_by_id(CALL).video_status == status


def test_unknown_malformed_and_unauthenticated_retries(api, stub_broker):
    assert api.simulate_post(f"/calls/{'CA' + '0' * 32}/retry", headers=AUTH).status_code == 404
    assert api.simulate_post("/calls/CA-nope/retry", headers=AUTH).status_code == 400
    make_call(CALL, video_status=VideoStatus.FAILED)
    assert api.simulate_post(f"/calls/{CALL}/retry").status_code == 401
    assert api.simulate_get(f"/calls/{CALL}/retry", headers=AUTH).status_code == 405
    assert Call.get_by_id(CALL).video_status == VideoStatus.FAILED and sent(stub_broker, "ingest") == []


def test_a_broker_that_is_down_is_a_503(api, stub_broker, monkeypatch):
    make_call(CALL, video_status=VideoStatus.FAILED, stage=Stage.DONE)

    def refuse(*args, **kwargs):
        raise dramatiq.errors.ConnectionClosed(OSError("connection refused"))

    monkeypatch.setattr(stub_broker, "enqueue", refuse)
    response = api.simulate_post(f"/calls/{CALL}/retry", headers=AUTH)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"


def test_the_call_view_lists_segments_with_request_ids_attempts_and_videos(pg_db, stub_broker, ingest_env, s3):
    api = falcon.testing.TestClient(create_app())
    t0 = dt.datetime(2026, 11, 26, 3, 0, 0)
    make_call(CALL, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION, generation_started_at=t0)
    key = keys.segment_video_key(CALL, "caller", 0)
    put(s3, key, b"segment zero", "video/mp4")
    Segment.create(call_id=CALL, side="caller", index=0, start=0, end=12.5, state=SegmentState.COMPLETED,
                   fal_request_id="req-caller-0", attempts=1, video_key=key, submitted_at=t0, finished_at=t0 + dt.timedelta(seconds=40))
    Segment.create(call_id=CALL, side="caller", index=1, start=12.5, end=20, state=SegmentState.SUBMITTED,
                   fal_request_id="req-caller-1", attempts=2, progress="IN_QUEUE position 3")
    # A key that is not this call's never becomes a URL.
    Segment.create(call_id=CALL, side="callee", index=0, start=0, end=20, state=SegmentState.FAILED,
                   fal_request_id="req-callee-0", attempts=3, error="fal 422", video_key=keys.video_key("CA" + "1" * 32))

    body = api.simulate_get(f"/calls/{CALL}", headers=AUTH).json
    segments = body["segments"]
    assert [(s["side"], s["index"], s["fal_request_id"], s["attempts"], s["state"]) for s in segments] == [
        ("callee", 0, "req-callee-0", 3, "failed"),
        ("caller", 0, "req-caller-0", 1, "completed"),
        ("caller", 1, "req-caller-1", 2, "submitted"),
    ]
    assert segments[0]["error"] == "fal 422" and segments[0]["video_url"] is None
    assert segments[1]["finished_at"] == "2026-11-26T03:00:40Z" and segments[2]["progress"] == "IN_QUEUE position 3"
    with urllib.request.urlopen(segments[1]["video_url"], timeout=10) as response:
        assert response.read() == b"segment zero"
    assert body["stages"]["generation"]["state"] == "running"
