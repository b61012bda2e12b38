"""bench/scale.py on a thousand calls: the seeding makes what the benchmark claims, and the pages answer through the app."""

from __future__ import annotations

import pytest

from bench import scale

pytestmark = [pytest.mark.postgres]


def test_the_scale_benchmark_seeds_realistic_calls_and_measures_every_page(pg_url, settings_env, monkeypatch, capsys):
    for name in scale.APP_ENV:  # the benchmark sets these for its app: put back afterwards
        monkeypatch.setenv(name, "")
    database = pg_url.rsplit("/", 1)[1]  # the session's own database, never `test`
    assert scale.main(["--calls", "1000", "--requests", "2", "--database", database, "--output", "none"]) == 0
    out = capsys.readouterr().out
    for page in ("overview, 24 h", "overview, 7 days", "list, status=failed", "list, search q=", "call page"):
        assert f"| {page}" in out, page
    assert "Index Only Scan using calls_ended_idx" in out and "calls_created_idx" in out  # the plans name the indexes

    import psycopg2

    conn = psycopg2.connect(pg_url)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT id), min(created_at) < now() - interval '25 days', "
                    "count(*) FILTER (WHERE video_status = 'failed'), count(*) FILTER (WHERE video_status = 'completed'), "
                    "count(*) FILTER (WHERE video_status = 'failed' AND video_error_message IS NULL), "
                    "count(*) FILTER (WHERE video_status = 'completed' AND compositor_finished_at IS NULL) FROM calls")
        total, distinct, spread, failed, completed, failed_without_reason, completed_unfinished = cur.fetchone()
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'calls'")
        indexes = {name for (name,) in cur.fetchall()}
    conn.close()
    assert total == distinct == 1000 and spread
    assert 20 <= failed <= 100 and completed >= 800 and failed_without_reason == 0 and completed_unfinished == 0
    assert {"calls_created_idx", "calls_status_created_idx", "calls_ended_idx", "calls_in_flight_idx"} <= indexes
