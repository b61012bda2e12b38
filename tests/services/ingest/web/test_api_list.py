"""``GET /calls``: newest first, filters, prefix search, keyset pages, and a 400 naming every bad input."""

import datetime as dt

import falcon.testing
import pytest

from services.ingest.app import create_app
from services.ingest.web.listing import decode_cursor, encode_cursor
from shared.calls import ListPosition
from shared.models import Stage, VideoStatus
from tests.services.ingest.conftest import API_TOKEN
from tests.support.calls import make_call, sid

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
T0 = dt.datetime(2026, 11, 26, 3, 0, 0)


@pytest.fixture
def api(pg_db, stub_broker, ingest_env):
    return falcon.testing.TestClient(create_app())


def get(api, query: str = "", headers=AUTH):
    return api.simulate_get("/calls", query_string=query or None, headers=headers)


def test_rows_carry_status_stage_duration_age_and_processing_time(api):
    make_call(
        sid(1), recording_sid=sid(1, "RE"), video_status=VideoStatus.COMPLETED, stage=Stage.DONE,
        recording_duration=61, audio_duration=60.52, created_at=T0,
        video_processing_started_at=T0, video_processing_completed_at=T0 + dt.timedelta(seconds=95), video_processing_duration=95,
    )
    make_call(sid(2), video_status=VideoStatus.FAILED, stage=Stage.DONE, recording_duration=30,
                video_error_message="recording is mono", created_at=T0 + dt.timedelta(minutes=1))

    response = get(api)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json
    assert [row["id"] for row in body["calls"]] == [sid(2), sid(1)] and body["next_cursor"] is None
    newest, oldest = body["calls"]
    assert (newest["status"], newest["stage"], newest["duration"], newest["error"]) == ("failed", "done", 30, "recording is mono")
    assert (oldest["recording_sid"], oldest["duration"], oldest["processing_seconds"]) == (sid(1, "RE"), 60.52, 95.0)
    assert oldest["created_at"] == "2026-11-26T03:00:00Z"
    assert oldest["age_seconds"] - newest["age_seconds"] == 60


def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(api):
    # Five calls in the same second, so only the id orders them.
    for n in range(1, 8):
        make_call(sid(n), created_at=T0 + dt.timedelta(seconds=min(n, 3)))
    seen, query = [], "limit=3"
    while True:
        body = get(api, query).json
        seen.append([row["id"] for row in body["calls"]])
        if not body["next_cursor"]:
            break
        query = f"limit=3&cursor={body['next_cursor']}"
    assert seen == [[sid(7), sid(6), sid(5)], [sid(4), sid(3), sid(2)], [sid(1)]]


def test_filters_combine_with_pages_and_search(api):
    for n in range(1, 6):
        make_call(sid(0xA0 + n), recording_sid=sid(0xB0 + n, "RE"), created_at=T0 + dt.timedelta(seconds=n),
                    video_status=VideoStatus.FAILED if n % 2 else VideoStatus.PENDING, stage=Stage.DONE if n % 2 else Stage.AUDIO)
    first = get(api, "status=failed&limit=2").json
    assert [r["id"] for r in first["calls"]] == [sid(0xA5), sid(0xA3)]
    second = get(api, f"status=failed&limit=2&cursor={first['next_cursor']}").json
    assert [r["id"] for r in second["calls"]] == [sid(0xA1)] and second["next_cursor"] is None
    assert [r["id"] for r in get(api, "stage=audio").json["calls"]] == [sid(0xA4), sid(0xA2)]
    assert [r["id"] for r in get(api, f"q={sid(0xA2)}").json["calls"]] == [sid(0xA2)]
    assert [r["id"] for r in get(api, f"q={sid(0xB3, 'RE')}").json["calls"]] == [sid(0xA3)]
    # Typed in lower case, as people paste from logs.
    assert [r["id"] for r in get(api, f"q={sid(0xB3, 'RE').lower()}").json["calls"]] == [sid(0xA3)]
    assert get(api, "q=CAffff").json["calls"] == []


@pytest.mark.parametrize(
    "query, says",
    [
        ("status=done", "status must be one of pending, generating, completed, partial, failed"),
        ("stage=mixing", "stage must be one of"),
        ("limit=0", "limit must be a whole number from 1 to 200"),
        ("limit=201", "limit must be a whole number from 1 to 200"),
        ("limit=ten", "limit must be a whole number"),
        ("limit=%C2%B2", "limit must be a whole number"),  # '²' is a digit to str.isdigit, not to int()
        ("limit=-1", "limit must be a whole number"),
        ("cursor=not-a-cursor", "cursor is not one this service returned"),
        ("cursor=%2F%2F%2F", "cursor is not one this service returned"),
        ("q=CA%25", "q must be the start of a call id"),  # a LIKE wildcard
        ("q=CA_1", "q must be the start of a call id"),
        ("q=" + "a" * 35, "q must be the start of a call id"),
        ("q=%27%3B--", "q must be the start of a call id"),
        ("status=failed&status=partial", "status is given more than once"),
        ("order=asc", "unknown parameter(s) order"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong(api, query, says):
    make_call(sid(1), created_at=T0)
    response = get(api, query)
    assert response.status_code == 400, response.text
    assert response.json["title"] == "Invalid query"
    assert says in response.json["description"]


def test_every_problem_is_named_at_once(api):
    description = get(api, "status=x&limit=0&cursor=zz!").json["description"]
    assert "status" in description and "limit" in description and "cursor" in description


def test_a_forged_cursor_is_refused_and_a_real_one_round_trips():
    position = ListPosition(T0 + dt.timedelta(microseconds=7), sid(3))
    assert decode_cursor(encode_cursor(position)) == position
    assert decode_cursor(encode_cursor(ListPosition(None, sid(3)))) == ListPosition(None, sid(3))
    import base64

    for raw in (b"2026-11-26T03:00:00", b"yesterday|" + sid(1).encode(), b"|CA' OR 1=1"):
        with pytest.raises(ValueError):
            decode_cursor(base64.urlsafe_b64encode(raw).decode().rstrip("="))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}], ids=["none", "wrong"])
def test_the_list_needs_the_bearer_token(api, headers):
    make_call(sid(1))
    response = get(api, headers=headers)
    assert response.status_code == 401 and "calls" not in response.json


def test_a_session_cookie_is_not_a_bearer_token(api):
    login = api.simulate_post("/ops/login", body=f"token={API_TOKEN}", headers={"Content-Type": "application/x-www-form-urlencoded"})
    cookie = login.cookies["callreel_session"].value
    assert get(api, headers={"Cookie": f"callreel_session={cookie}"}).status_code == 401
