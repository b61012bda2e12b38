"""The overview page and the banners: the numbers each query gives against the rows, on both databases, and as a person reads them."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from services.ingest.web import stats
from services.ingest.web.banners import BannerReader
from shared.models import Call, Stage, VideoStatus, utcnow
from shared.overview_store import OverviewHour
from shared.queues import QueueReader
from shared.settings import load_settings
from tests.support.calls import make_call, sid

REASONS = ("Twilio answered 404 for the recording for 120 s", "recording is mono: enable dual-channel recording in Twilio")


def seed(now: dt.datetime) -> None:
    """Twenty-odd calls over two days: every outcome, stage times that differ, a recorded cost and an estimated one."""
    n = 0
    for hours_ago in (0.2, 1.5, 1.7, 3.2, 5.5, 5.6, 5.9, 11.1, 20.4, 23.5, 30, 47):
        for k in range(1 + int(hours_ago) % 3):
            n += 1
            created = now - dt.timedelta(hours=hours_ago, minutes=k)
            status = (VideoStatus.COMPLETED, VideoStatus.COMPLETED, VideoStatus.FAILED, VideoStatus.PARTIAL, VideoStatus.GENERATING)[n % 5]
            columns: dict = {"created_at": created, "video_status": status, "stage": Stage.DONE}
            clock = created
            for i, stage in enumerate(("ingest", "audio", "generation", "compositor")):
                seconds = (n * 7 + i * 13) % 50 + 1
                columns[f"{stage}_started_at"] = clock
                clock += dt.timedelta(seconds=seconds)
                columns[f"{stage}_finished_at"] = clock
            if status == VideoStatus.GENERATING:
                columns["stage"] = Stage.GENERATION
                columns["generation_finished_at"] = columns["compositor_started_at"] = columns["compositor_finished_at"] = None
            else:
                columns["video_processing_completed_at"] = clock
            if status in (VideoStatus.FAILED, VideoStatus.PARTIAL):
                columns["video_error_message"] = REASONS[n % 2] + (" " * 3 + "tail" * 40 if n % 4 == 0 else "")
            columns["caller_state"] = "generated"
            columns["caller_duration"] = 10.0 + n
            if n % 3 == 0:
                columns["fal_cost_usd"] = 0.25 * n
            make_call(sid(n), **columns)


def nearest_rank(values: list[float], fraction: float) -> float | None:
    values = sorted(values)
    return round(values[max(1, math.ceil(fraction * len(values))) - 1], 3) if values else None


@pytest.mark.parametrize("db", ["sqlite_db", "pg_db"])
def test_each_overview_number_is_the_rows(request, db):
    request.getfixturevalue(db)
    now = utcnow()
    seed(now)
    since = now - dt.timedelta(hours=24)
    calls = list(Call.select())
    window = [c for c in calls if c.created_at >= since]

    ended = [c for c in calls if c.video_processing_completed_at and c.video_processing_completed_at >= stats.floor_hour(since)]
    hours = stats.hours_ended(since, now)
    for hour, counted in hours.items():
        in_hour = [c for c in ended if stats.floor_hour(c.video_processing_completed_at) == hour]
        assert (counted.completed, counted.partial, counted.failed) == tuple(
            sum(c.video_status == o for c in in_hour) for o in ("completed", "partial", "failed")
        ), hour
        assert counted.fal_cost_usd == pytest.approx(sum(c.fal_cost_usd or 0 for c in in_hour))
        assert counted.fal_seconds == pytest.approx(sum(c.caller_duration for c in in_hour if c.fal_cost_usd is None))
    assert sum(h.ended for h in hours.values()) == len(ended) > 10
    assert stats.in_progress() == sum(c.video_status not in VideoStatus.TERMINAL for c in calls)
    # Closed hours went into the rollup and are read from it; the open hour stays live.
    stored = {row.hour for row in OverviewHour.select()}
    assert stored == {h for h in hours if h < stats.floor_hour(now - stats.SETTLE)} and len(stored) >= 23
    make_call(sid(999), created_at=now, video_status=VideoStatus.FAILED, stage=Stage.DONE, video_processing_completed_at=now)
    again = stats.hours_ended(since, now + dt.timedelta(seconds=1))
    assert again[stats.floor_hour(now)].failed == hours.get(stats.floor_hour(now), stats.Hour()).failed + 1
    Call.delete().where(Call.id == sid(999)).execute()

    found = {d.name: d for d in stats.durations(hours, since)}
    bounds = (0, *stats.DURATION_BOUNDS)
    for name in (*("ingest", "audio", "generation", "compositor"), "webhook → video"):
        if name == "webhook → video":
            seconds = [(c.video_processing_completed_at - c.created_at).total_seconds() for c in ended if c.video_status in ("completed", "partial")]
        else:
            seconds = [
                (getattr(c, f"{name}_finished_at") - getattr(c, f"{name}_started_at")).total_seconds()
                for c in ended if getattr(c, f"{name}_finished_at")
            ]
        assert found[name].count == len(seconds), name
        for fraction, shown in ((0.5, found[name].p50), (0.95, found[name].p95)):
            # The bucket's interpolation lies in the bucket that holds the true nearest-rank value.
            true = nearest_rank(seconds, fraction)
            bucket = next(i for i in range(1, len(bounds)) if true <= bounds[i])
            assert bounds[bucket - 1] <= shown <= bounds[bucket], (name, fraction, true, shown)
    assert stats.quantile(0.5, [0, 0, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]) == 5.0  # rank 2 of 4: the top of (2.5, 5]
    assert stats.quantile(0.95, [0, 0, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]) == 10.0  # rank 4: the top of (5, 10]
    assert stats.quantile(0.5, [0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]) == 7.5  # rank 2 of the 4 in (5, 10]: half way
    assert stats.quantile(0.5, [0] * 14 + [3]) == 7200.0  # past the last bound: the page says "> 2 h"

    reasons = dict(stats.failure_reasons(hours, since))
    for reason in reasons:
        assert reasons[reason] == sum(
            1 for c in ended if c.video_status in ("failed", "partial") and (c.video_error_message or "")[:100] == reason
        )
    assert set(REASONS) <= set(reasons)
    # Read again, the closed hours come from the rollup, reasons and buckets alike.
    assert stats.failure_reasons(stats.hours_ended(since, now), since) == stats.failure_reasons(hours, since)
    assert stats.durations(stats.hours_ended(since, now), since) == list(found.values())


def test_banners_for_stuck_calls_and_a_high_failure_rate(sqlite_db):
    now = utcnow()
    settings = load_settings({"CALLREEL_DATA_DIR": "/tmp", "STAGE_DEADLINE": "600", "ALERT_FAILURE_RATE": "0.5"})
    reader = BannerReader(settings, QueueReader(settings))
    make_call(sid(1), stage=Stage.AUDIO, video_status=VideoStatus.PENDING, audio_started_at=now - dt.timedelta(seconds=900))
    make_call(sid(2), stage=Stage.AUDIO, video_status=VideoStatus.PENDING, audio_started_at=now - dt.timedelta(seconds=60))
    make_call(sid(3), stage=Stage.DONE, video_status=VideoStatus.FAILED, audio_started_at=now - dt.timedelta(seconds=9000),
              video_processing_completed_at=now - dt.timedelta(minutes=10))
    make_call(sid(4), stage=Stage.DONE, video_status=VideoStatus.COMPLETED, video_processing_completed_at=now - dt.timedelta(minutes=5))
    # One of two ended calls failed: 50 %, not over the limit; one stuck call at audio.
    assert [(b.kind, b.link) for b in reader.read()] == [("stuck", "/ops/calls?stage=audio")]
    make_call(sid(5), stage=Stage.DONE, video_status=VideoStatus.FAILED, video_processing_completed_at=now - dt.timedelta(minutes=1))
    reader._cached = None
    banners = reader.read()
    assert [b.kind for b in banners] == ["stuck", "failure-rate"]
    assert banners[1].text.startswith("2 of the 3 calls that ended in the last hour failed (67%")
