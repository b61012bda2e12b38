"""The console at scale: a million calls in PostgreSQL, and how fast the overview, the list and a call page answer.

    make bench-scale                                   # = .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --calls 1000000 --requests 30
    .venv/bin/python bench/scale.py --calls 1000 --requests 3 --output none   # a smoke run (the test does this)

Seeds ``--calls`` calls over 30 days into a database of its own (``--database``,
default ``callreel_scale`` on the tests' server: the ``test`` database others
use is never touched), with one INSERT … SELECT over ``generate_series`` (the
server makes the rows: a million in well under a minute), the distributions of
a busy deployment: 90 % completed, 4 % partial,
5 % failed with a handful of reasons, the last hour's calls still in flight,
stage times drawn from long-tailed spreads, half the calls with a recorded fal
cost. The indexes are made after the rows (``shared.migrations``, the
migration ``callreel migrate`` runs), then ANALYZE.

Then it asks the real Falcon app (``services.ingest.app.create_app``, an
operator signed in) for each page ``--requests`` times and prints p50/p95
against the 300 ms goal, and the ``EXPLAIN`` plan of every query each page ran,
so the indexes used are seen. Figures, not assertions. The figures go to
docs/benchmarks.md (``--output``) between the ``scale`` markers of its
hand-written part, which ``bench/run.py`` keeps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402

__all__ = ["main", "seed", "SEED_SQL", "GOAL_MS", "APP_ENV"]

GOAL_MS = 300.0
ADMIN_DSN = os.environ.get("CALLREEL_SCALE_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN = "scale-bench-token-" + "x" * 20
# The settings of the ingest app the benchmark asks (DATABASE_URL and CALLREEL_DATA_DIR are added).
APP_ENV = {
    "CALLREEL_API_TOKEN": TOKEN, "BROKER_URL": "memory://", "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "PUBLIC_BASE_URL": "https://callreel.example",
    "RABBITMQ_MANAGEMENT_URL": "", "DATABASE_URL": "", "CALLREEL_DATA_DIR": "",
}
# Failure reasons and their weights among failed calls (partial calls get the generation ones).
REASONS = (
    "Twilio answered 404 for the recording for 120 s",
    "recording is mono: enable dual-channel recording in Twilio",
    "fal.ai job failed: model returned no video",
    "generation took longer than STAGE_DEADLINE; the sweeper gave up after 2 retries",
    "recording is longer than RECORDING_MAX_SECONDS (7200 s)",
    "the object store was unreachable for longer than STORAGE_OUTAGE_TOLERANCE",
)

# One row per call, spread evenly over the span. r1..r6 are independent uniforms; the
# stage times are long-tailed (exp of a uniform: generation from 1 to ~20 minutes).
SEED_SQL = """
INSERT INTO calls (
    id, recording_sid, recording_url, account_sid, source, created_at, updated_at, video_status, stage,
    recording_duration, recording_channels, audio_duration,
    ingest_started_at, ingest_finished_at, audio_started_at, audio_finished_at,
    generation_started_at, generation_finished_at, compositor_started_at, compositor_finished_at,
    video_processing_started_at, video_processing_completed_at, video_processing_duration,
    caller_state, callee_state, caller_duration, callee_duration, video_error_message, fal_cost_usd,
    ingest_attempts, audio_attempts, generation_attempts, compositor_attempts, transcript_status
)
SELECT
    'CA' || md5('c' || i), 'RE' || md5('r' || i), 'https://api.twilio.com/rec/' || i, 'AC' || repeat('0', 32), 'twilio',
    created, created, status, CASE WHEN status IN ('pending', 'generating') THEN live_stage ELSE 'done' END,
    dur, 2, dur,
    created, t1, t1, t2,
    CASE WHEN reached >= 3 THEN t2 END, CASE WHEN reached >= 4 THEN t3 END,
    CASE WHEN reached >= 4 THEN t3 END, CASE WHEN reached >= 5 THEN t4 END,
    created, ended, CASE WHEN ended IS NOT NULL THEN EXTRACT(EPOCH FROM ended - created)::int END,
    CASE WHEN reached >= 4 THEN 'generated' ELSE 'pending' END, CASE WHEN reached >= 4 THEN 'generated' ELSE 'pending' END,
    dur / 2.0, dur / 2.0,
    CASE WHEN status = 'failed' THEN (ARRAY[%(reasons)s])[1 + floor(r5 * r5 * 6)::int]
         WHEN status = 'partial' THEN (ARRAY[%(reasons)s])[3 + floor(r5 * 2)::int] END,
    CASE WHEN reached >= 4 AND r6 < 0.5 THEN round((dur * 0.05)::numeric, 2)::float END,
    1, 1, 1 + (r6 < 0.05)::int, 1, 'none'
FROM (
    SELECT i, created, status, dur, r5, r6, t1, t2, t3, t4,
        CASE WHEN status = 'completed' THEN t4 WHEN status = 'partial' THEN t4
             WHEN status = 'failed' THEN (ARRAY[t1, t2, t3, t4])[least(reached, 4)] END AS ended,
        CASE reached WHEN 1 THEN 'ingest' WHEN 2 THEN 'audio' WHEN 3 THEN 'generation' ELSE 'compositor' END AS live_stage,
        reached
    FROM (
        SELECT i, created, status, dur, r5, r6,
            created + make_interval(secs => 1 + exp(r1 * 2.5)) AS t1,
            created + make_interval(secs => 1 + exp(r1 * 2.5) + 2 + exp(r2 * 3)) AS t2,
            created + make_interval(secs => 1 + exp(r1 * 2.5) + 2 + exp(r2 * 3) + 60 + exp(r3 * 7)) AS t3,
            created + make_interval(secs => 1 + exp(r1 * 2.5) + 2 + exp(r2 * 3) + 60 + exp(r3 * 7) + 10 + exp(r4 * 4.5)) AS t4,
            CASE WHEN status = 'completed' OR status = 'partial' THEN 5
                 WHEN status = 'failed' THEN 1 + floor(r5 * 4)::int ELSE 1 + floor(r6 * 4)::int END AS reached
        FROM (
            SELECT i, created, r1, r2, r3, r4, r5, r6, 30 + floor(r2 * r3 * 900) AS dur,
                CASE WHEN created > now() AT TIME ZONE 'UTC' - interval '20 minutes' AND r6 < 0.8 THEN 'generating'
                     WHEN created > now() AT TIME ZONE 'UTC' - interval '2 hours' AND r6 < 0.05 THEN 'pending'
                     WHEN r4 < 0.05 THEN 'failed' WHEN r4 < 0.09 THEN 'partial' ELSE 'completed' END AS status
            FROM (
                SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6,
                    now() AT TIME ZONE 'UTC' - make_interval(secs => %(span)s * (i - 1 + random()) / %(calls)s) AS created
                FROM generate_series(1, %(calls)s) AS i
            ) a
        ) b
    ) c
) d
"""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def database_url(name: str) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def ensure_database(name: str) -> str:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return database_url(name)


def seed(url: str, calls: int) -> float:
    """Replace the calls of the database at ``url`` by ``calls`` seeded ones; the seconds it took."""
    from shared.db import init_database
    from shared.migrations import CONSOLE_INDEXES, run_migrations

    db = init_database(url, force=True)
    run_migrations(db)
    started = time.perf_counter()
    with db.connection_context():
        db.execute_sql("SET statement_timeout = 0")
        db.execute_sql("TRUNCATE calls, callreel_segments")
        # Rows first, indexes after: building an index once is much cheaper than updating it per row.
        for name in CONSOLE_INDEXES:
            db.execute_sql(f"DROP INDEX IF EXISTS {name}")
        reasons = ", ".join("'" + r.replace("'", "''") + "'" for r in REASONS)
        sql = SEED_SQL.replace("%(reasons)s", reasons).replace("%(span)s", str(30 * 86400)).replace("%(calls)s", str(int(calls)))
        db.execute_sql(sql)
    index(db)
    return time.perf_counter() - started


def index(db: Any) -> None:
    """(Re)make the console's indexes as the migration declares them, then VACUUM ANALYZE."""
    from shared.migrations import CONSOLE_INDEXES, run_migrations

    with db.connection_context():
        for name in CONSOLE_INDEXES:
            db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    run_migrations(db)
    with db.connection_context():
        # The overview's rollup starts empty: the first request fills it (its time is printed apart).
        db.execute_sql("TRUNCATE callreel_overview_hours, callreel_overview_reasons")
        # As autovacuum would, in time: the visibility map lets the covering indexes answer alone.
        db.execute_sql("VACUUM ANALYZE calls")


class Recorder:
    """Every statement the app runs while on: (sql, params), for EXPLAIN."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        original = db.execute_sql

        def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            if self.on:
                self.statements.append((sql, params))
            return original(sql, params, *args, **kwargs)

        db.execute_sql = execute_sql


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, -(-int(fraction * len(ordered) * 1000) // 1000)) - 1]


def measure(url: str, requests: int) -> tuple[list[list[str]], list[str]]:
    """p50/p95 of each page through the real app, and the EXPLAIN plans of the queries each page ran."""
    os.environ.update(APP_ENV, DATABASE_URL=url, CALLREEL_DATA_DIR=str(ROOT / ".callreel" / "scale"))
    from falcon.testing import TestClient

    from services.ingest.app import create_app, forget_banners
    from shared.db import database
    from shared.settings import reload_settings

    reload_settings()
    app = create_app()
    client = TestClient(app)
    login = client.simulate_post("/ops/login", body=f"token={TOKEN}", headers={"Content-Type": "application/x-www-form-urlencoded"})
    cookie = {"Cookie": f"callreel_session={login.cookies['callreel_session'].value}"}
    recorder = Recorder(database.obj)
    with database.obj.connection_context():
        (count,) = database.obj.execute_sql("SELECT count(*) FROM calls").fetchone()
        (some_id,) = database.obj.execute_sql(f"SELECT id FROM calls ORDER BY created_at DESC LIMIT 1 OFFSET {min(5000, count // 2)}").fetchone()
        (failed_prefix,) = database.obj.execute_sql(
            "SELECT substr(id, 1, 6) FROM calls WHERE video_status = 'failed' ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    deep = client.simulate_get("/ops/calls", params={"status": "completed"}, headers=cookie)
    cursor = None
    for _ in range(20):  # twenty pages down: keyset pages cost the same deep as on top
        import re

        found = re.search(r'id="older" href="/ops/calls\?([^"]+)"', deep.text)
        if not found:
            break
        cursor = found.group(1).replace("&amp;", "&")
        deep = client.simulate_get("/ops/calls", query_string=cursor, headers=cookie)
    pages = [
        ("overview, 24 h", "/ops/overview", ""),
        ("overview, 7 days", "/ops/overview", "range=7d"),
        ("list, newest", "/ops/calls", ""),
        ("list, status=failed", "/ops/calls", "status=failed"),
        ("list, stage=generation", "/ops/calls", "stage=generation"),
        ("list, search q=" + failed_prefix, "/ops/calls", f"q={failed_prefix}"),
        ("list, status=completed, page 21", "/ops/calls", cursor or "status=completed"),
        ("call page", f"/ops/calls/{some_id}", ""),
    ]
    rows, plans = [], []

    for name, path, query in pages:
        timings = []
        for n in range(requests + 1):
            forget_banners()  # every request pays for its banners: the worst case
            recorder.on, recorder.statements = n == 0, []
            started = time.perf_counter()
            response = client.simulate_get(path, query_string=query, headers=cookie)
            elapsed = (time.perf_counter() - started) * 1000
            recorder.on = False
            if response.status_code != 200:
                raise RuntimeError(f"{path}?{query} answered {response.status_code}: {response.text[:300]}")
            if n == 0:
                statements = list(recorder.statements)
                first = elapsed
                continue  # the first request warms caches (and fills the overview's rollup); its queries are explained
            timings.append(elapsed)
        p95 = percentile(timings, 0.95)
        rows.append([name, str(requests), f"{first:.0f}", f"{statistics.median(timings):.0f}", f"{p95:.0f}", f"{GOAL_MS:.0f}",
                     "met" if p95 <= GOAL_MS else "**missed**"])
        plans.append(f"### {name} (`GET {path}{'?' + query if query else ''}`)\n")
        with database.obj.connection_context():
            for sql, params in statements:
                if not sql.lstrip().upper().startswith("SELECT") or "calls" not in sql:
                    continue
                plan = database.obj.execute_sql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params).fetchall()
                plans.append("```\n" + _short(sql) + "\n" + "\n".join(line for (line,) in plan) + "\n```\n")
    return rows, plans


def _short(sql: str) -> str:
    return sql if len(sql) <= 400 else sql[:400] + " …"


def markdown(calls: int, seed_seconds: float | None, rows: list[list[str]], plans: list[str], command: str) -> str:
    from bench.report import table

    seeded = f"seeded in {seed_seconds:.0f} s" if seed_seconds is not None else "seeded by an earlier run"
    return "\n".join([
        "## Console at scale",
        "",
        f"Generated by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {calls:,} calls over 30 days in PostgreSQL "
        f"({seeded}); each page asked through the Falcon app (operator signed in, banners recomputed on every request), "
        f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}.",
        "",
        table(["page", "requests", "first ms", "p50 ms", "p95 ms", "goal p95 ms", ""], rows),
        "",
        "_first_: the first request, not counted in p50/p95; on the overview it fills the rollup of the closed hours "
        "(once per deployment; afterwards one hour an hour). The machine is shared: the load average above is "
        "what the figures were measured under (2 cores).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls to seed")
    parser.add_argument("--requests", type=int, default=30, help="requests per page (p95 over them; at least 20 for the record)")
    parser.add_argument("--database", default="callreel_scale", help="database to seed (created if missing; never `test`)")
    parser.add_argument("--reuse", action="store_true", help="keep the rows an earlier run seeded if there are --calls of them")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"), help="Markdown file to update, or `none`")
    args = parser.parse_args(argv)
    if args.database == "test":
        parser.error("--database test is the tests' shared database: pick another name")
    url = ensure_database(args.database)
    seed_seconds = None
    if args.reuse:
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('calls') IS NOT NULL")
            exists = cur.fetchone()[0]
            count = 0
            if exists:
                cur.execute("SELECT count(*) FROM calls")
                count = cur.fetchone()[0]
        conn.close()
        args.reuse = count == args.calls
    if not args.reuse:
        say(f"seeding {args.calls:,} calls into {args.database} …")
        seed_seconds = seed(url, args.calls)
        say(f"seeded in {seed_seconds:.1f} s")
    else:
        from shared.db import init_database

        say(f"reusing the {args.calls:,} calls of {args.database}; making the indexes again …")
        index(init_database(url, force=True))
    rows, plans = measure(url, args.requests)
    command = "bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(args.calls, seed_seconds, rows, plans, command.strip())
    print(text)
    print("## EXPLAIN plans\n")
    print("\n".join(plans))
    if args.output != "none":
        from bench.report import write_section

        write_section(Path(args.output), "scale", text + "\nThe `EXPLAIN` plans are printed by the run.\n")
        say(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
