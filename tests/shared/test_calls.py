"""``shared.calls``: the keyset-paginated listing (on SQLite and PostgreSQL), stage timeline, processing time, counts."""

import datetime as dt

import pytest

from shared.calls import ListPosition, calls_per_stage, newest_calls, processing_seconds, stage_timeline
from shared.models import Call, Stage, VideoStatus
from tests.support.calls import make_call, sid

T0 = dt.datetime(2026, 11, 26, 3, 0, 0)


@pytest.fixture(params=["sqlite_db", "pg_db"])
def db(request):
    return request.getfixturevalue(request.param)


def walk(limit: int, **filters) -> list[list[str]]:
    """Every page of the listing, following the last row's position as the API's cursor does."""
    pages, after = [], None
    while True:
        rows = newest_calls(limit=limit, after=after, **filters)
        if not rows:
            return pages
        pages.append([c.id for c in rows])
        after = ListPosition.of(rows[-1])


def test_pages_are_newest_first_with_ties_broken_by_id_and_undated_rows_last(db):
    # Three calls share a timestamp (a burst of webhooks), two have none (rows the host application made).
    make_call(sid(1), created_at=T0)
    make_call(sid(2), created_at=T0 + dt.timedelta(seconds=5))
    for n in (3, 4, 5):
        make_call(sid(n), created_at=T0 + dt.timedelta(seconds=10))
    make_call(sid(6), created_at=T0 + dt.timedelta(microseconds=1))
    Call.insert(id=sid(7), created_at=None).execute()
    Call.insert(id=sid(8), created_at=None).execute()

    expected = [sid(5), sid(4), sid(3), sid(2), sid(6), sid(1), sid(8), sid(7)]
    assert [c.id for c in newest_calls(limit=100)] == expected
    for limit in (1, 2, 3, 5):
        pages = walk(limit)
        assert [row for page in pages for row in page] == expected, limit
        assert all(len(page) <= limit for page in pages)


def test_a_page_does_not_move_when_newer_calls_arrive(db):
    for n in range(1, 6):
        make_call(sid(n), created_at=T0 + dt.timedelta(seconds=n))
    first = newest_calls(limit=2)
    make_call(sid(99), created_at=T0 + dt.timedelta(minutes=5))
    second = newest_calls(limit=2, after=ListPosition.of(first[-1]))
    assert [c.id for c in first + second] == [sid(5), sid(4), sid(3), sid(2)]


def test_filters_and_prefix_search(db):
    make_call(sid(0xAB1), recording_sid=sid(0xF1, "RE"), video_status=VideoStatus.FAILED, stage=Stage.DONE, created_at=T0)
    make_call(sid(0xAB2), recording_sid=sid(0xF2, "RE"), video_status=VideoStatus.PENDING, stage=Stage.AUDIO, created_at=T0)
    make_call(sid(0xCD3), recording_sid=sid(0xAB, "RE"), video_status=VideoStatus.FAILED, stage=Stage.DONE, created_at=T0)

    assert {c.id for c in newest_calls(status="failed")} == {sid(0xAB1), sid(0xCD3)}
    assert [c.id for c in newest_calls(stage="audio")] == [sid(0xAB2)]
    assert [c.id for c in newest_calls(search=sid(0xAB2))] == [sid(0xAB2)]  # a whole id
    assert {c.id for c in newest_calls(search=sid(0xAB1)[:-1])} == {sid(0xAB1), sid(0xAB2)}  # a prefix
    assert [c.id for c in newest_calls(search=sid(0xF2, "RE"))] == [sid(0xAB2)]  # the recording SID
    assert {c.id for c in newest_calls(search=sid(0xF2, "RE")[:-1])} == {sid(0xAB1), sid(0xAB2)}
    assert [c.id for c in newest_calls(search="RE", status="failed", limit=1)] == [sid(0xCD3)]
    assert newest_calls(search="CA9") == []


def test_stage_timeline_says_where_each_stage_stands():
    failed = Call(
        id=sid(1), video_status=VideoStatus.FAILED, stage=Stage.DONE,
        ingest_started_at=T0, ingest_finished_at=T0 + dt.timedelta(seconds=2.5), ingest_attempts=2,
        audio_started_at=T0 + dt.timedelta(seconds=3), audio_attempts=3,
    )
    timeline = stage_timeline(failed)
    assert [row["stage"] for row in timeline] == ["ingest", "audio", "generation", "compositor"]
    assert [row["state"] for row in timeline] == ["done", "failed", "skipped", "skipped"]
    assert (timeline[0]["seconds"], timeline[0]["attempts"], timeline[1]["attempts"]) == (2.5, 2, 3)
    assert timeline[1]["seconds"] is None

    running = Call(id=sid(2), video_status=VideoStatus.GENERATING, stage=Stage.GENERATION,
                   audio_finished_at=T0, generation_started_at=T0)
    assert [row["state"] for row in stage_timeline(running)] == ["waiting", "done", "running", "waiting"]
    partial = Call(id=sid(3), video_status=VideoStatus.PARTIAL, stage=Stage.DONE, compositor_started_at=T0)
    assert stage_timeline(partial)[3]["state"] == "unfinished"


def test_processing_time_is_recorded_once_ended_and_running_until_then():
    ended = Call(video_status=VideoStatus.COMPLETED, video_processing_started_at=T0, video_processing_duration=42)
    assert processing_seconds(ended) == 42.0
    running = Call(video_status=VideoStatus.GENERATING, video_processing_started_at=T0)
    assert processing_seconds(running, now=T0 + dt.timedelta(seconds=90)) == 90.0
    assert processing_seconds(Call(video_status=VideoStatus.PENDING)) is None


def test_calls_per_stage_counts_only_calls_not_yet_ended(db):
    make_call(sid(1), stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    make_call(sid(2), stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    make_call(sid(3), stage=Stage.GENERATION, video_status=VideoStatus.GENERATING)
    make_call(sid(4), stage=Stage.DONE, video_status=VideoStatus.FAILED)
    assert calls_per_stage() == {"ingest": 0, "audio": 2, "generation": 1, "compositor": 0}
