"""The fal benchmark's arithmetic (bench/fal_figures.py): its bound, its goals on one clock, its schedule."""

from __future__ import annotations

import datetime as dt

import pytest

from bench import fal_figures as figures


def test_the_bound_is_the_longest_job_when_the_jobs_fit_in_the_concurrency():
    assert figures.bound([120.0, 40.0, 8.0], concurrency=10) == 120.0


def test_the_bound_is_the_work_over_the_concurrency_when_the_jobs_do_not_fit():
    # 30 jobs of 20 s compute on 10 runners: three waves, however they are ordered.
    assert figures.bound([20.0] * 30, concurrency=10) == pytest.approx(60.0)


def test_the_bound_of_no_job_is_zero():
    assert figures.bound([], concurrency=10) == 0.0


def test_the_video_goal_takes_b_onto_the_wall_clock_and_keeps_the_pipelines_30_s_real():
    # B = 600 s of fal's clock at scale 20 is 30 s of wall: 1.2 × 30 + 30.
    assert figures.video_goal(600.0, scale=20) == pytest.approx(66.0)
    # At scale 1 the two clocks are one: issue #26's 1.2 × B + 30 s as written.
    assert figures.video_goal(600.0, scale=1) == pytest.approx(750.0)


def test_the_burst_goal_is_twice_the_calls_own_b_plus_the_pipeline():
    assert figures.burst_goal(12.0, scale=20) == pytest.approx(31.2)
    assert figures.burst_goal(12.0, scale=1) == pytest.approx(54.0)


@pytest.mark.parametrize(
    ("minutes", "cancelled"),
    [(1, False), (5, False), (5.01, True), (10, True), (30, True)],
)
def test_the_plans_fixed_timeout_cancels_every_side_longer_than_five_minutes_at_speed_2(minutes, cancelled):
    assert figures.plan_proper_cancelled(minutes * 60, speed=2.0) is cancelled


def test_a_database_timestamp_lands_on_the_benchmarks_monotonic_clock():
    epoch = dt.datetime(2026, 12, 3, 22, 0, tzinfo=dt.UTC).timestamp()
    clock = figures.Clock(monotonic=1000.0, epoch=epoch)
    naive_utc = dt.datetime(2026, 12, 3, 22, 0, 42, 500000)  # what utcnow() writes
    assert clock.from_db(naive_utc) == pytest.approx(1042.5)
    assert clock.from_db(naive_utc.replace(tzinfo=dt.UTC)) == pytest.approx(1042.5)


def test_a_burst_of_fifty_is_posted_within_a_minute_and_a_small_one_a_second_apart():
    fifty = figures.post_offsets(50)
    assert len(fifty) == 50 and fifty[0] == 0 and fifty[-1] < 60
    assert figures.post_offsets(3) == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(("calls", "long"), [(3, 0), (9, 0), (12, 1), (24, 1), (50, 2), (100, 4)])
def test_a_burst_is_led_by_one_long_call_in_25_and_a_smoke_run_by_none(calls, long):
    assert figures.burst_long_calls(calls) == long


def test_the_stuck_guard_outlasts_the_plans_slowest_generation_and_the_compose():
    # The plan at real pacing: a 5-minute side cut at 300 s computes 600 s; a second wave as long; the compose.
    assert figures.row_timeout(300.0, speed=2.0, scale=1) > 2 * 600 + 300 * 0.2
    assert figures.row_timeout(1800.0, speed=2.0, scale=20) > 1800 * 0.2  # a 30-minute compose at ~10 s a minute


def test_polls_keep_productions_pace_on_fals_clock_but_not_faster_than_twice_a_second():
    assert figures.poll_interval(1) == 7.0
    assert figures.poll_interval(20) == 0.5


def test_every_measured_call_gets_a_variant_of_its_own():
    """Lengths too: calls of one variant share their first minutes, which generation's cache would serve."""
    from bench.fal_latency import row_variant

    names = {row_variant(way, minutes, n) for way in ("ours", "plan") for n in (1, 2) for minutes in (1, 5, 10, 30)}
    names |= {figures.variant("burst", i) for i in range(50)} | {figures.variant("burst-long", i) for i in range(2)}
    assert len(names) == 16 + 50 + 2


def test_the_table_has_a_cell_for_every_column_in_run_and_skipped_rows():
    from bench.fal_latency import CallFigures, markdown, skipped_plan

    ran = CallFigures("ours", 1, 2, "completed", 15.0, 14, 60.0, 6.04, 48.0, 11.0, 4.0, 9.0, 0, 20.0)
    plan = CallFigures("plan", 10, 1, "completed", 150.0, 6, 1200.0, 120.0, 480.0, 598.0, 35.0, 100.0, 0, 20.0)
    text = markdown([ran, plan, skipped_plan(30, 1, 20.0)], None, 20.0, "bench/fal_latency.py")
    table = [line for line in text.splitlines() if line.startswith("|")]
    widths = {line.count("|") for line in table}
    assert len(table) == 5 and len(widths) == 1, table
    assert "cancelled (not run)" in table[-1] and "completed ²" in table[-2]
    assert "¹ not run" in text and "² the plan proper" in text


def _section(rows, burst=None, earlier=None, scale=20.0):
    from bench.fal_latency import markdown

    return markdown(rows, burst, scale, "bench/fal_latency.py", earlier=earlier)


def _figures(label, minutes, compositors, seconds):
    from bench.fal_latency import CallFigures

    return CallFigures(label, minutes, compositors, "completed", seconds, 14, 60.0, 6.0, 48.0, 11.0, 4.0, 9.0, 0, 20.0)


def _burst():
    from bench.fal_latency import BurstFigures

    return BurstFigures(50, 2, 5, 2, {"completed": 50}, 400.0, 0, 900, 120.0, 11.0, 20.0, ["CA1: lost"])


def test_a_run_of_only_the_long_calls_keeps_the_short_rows_and_the_burst_of_the_run_before():
    first = _section([_figures("ours", 1, 1, 15.0), _figures("ours", 10, 1, 999.0)], _burst())
    second = _section([_figures("ours", 10, 1, 150.0), _figures("ours", 30, 1, 400.0)], earlier=first)
    rows = [line for line in second.splitlines() if line.startswith(("| ours", "| plan"))]
    assert [figures.row_key(r)[:2] for r in rows] == [("ours", 1.0), ("ours", 10.0), ("ours", 30.0)]
    assert figures.MARK in rows[0] and figures.MARK not in rows[1] + rows[2]  # only the kept row is marked
    assert "| 150 |" in rows[1] and "999" not in second  # the new measurement replaces the old one
    assert "**Burst**" in second and "- PROBLEM: CA1: lost" in second
    # A third run keeps the 1- and 10-minute rows: each with one mark, the 1-minute row's still the first run's.
    third = _section([_figures("ours", 30, 1, 390.0)], earlier=second)
    kept = [line for line in third.splitlines() if line.startswith("| ours") and figures.MARK in line]
    assert [figures.row_key(r)[1] for r in kept] == [1.0, 10.0]
    assert all(r.count(figures.MARK) == 1 for r in kept) and kept[0] == rows[0]


def test_rows_on_another_clock_are_not_kept():
    first = _section([_figures("ours", 1, 1, 15.0)], scale=20.0)
    second = _section([_figures("ours", 5, 1, 80.0)], earlier=first, scale=1.0)
    assert "| ours | 1 min" not in second and figures.MARK not in second


def test_a_new_burst_replaces_the_old_one():
    first = _section([_figures("ours", 1, 1, 15.0)], _burst())
    second = _section([_figures("ours", 1, 1, 15.0)], _burst(), earlier=first)
    assert second.count("**Burst**") == 1 and figures.MARK not in second
