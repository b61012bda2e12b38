import pytest
from peewee import IntegrityError

from shared.migrations import run_migrations
from shared.models import Call, Segment, VideoStatus


def _roundtrip(db):
    Call.create(id="CA" + "a" * 32, recording_sid="RE" + "1" * 32, caller_speech=[[0.5, 1.25]])
    call = Call.get_by_id("CA" + "a" * 32)
    assert call.video_status == VideoStatus.PENDING
    assert call.speech("caller") == [[0.5, 1.25]]
    assert call.created_at is not None
    with pytest.raises(IntegrityError):
        with db.atomic():
            Call.create(id="CA" + "b" * 32, recording_sid="RE" + "1" * 32)
    Segment.create(call_id=call.id, side="caller", index=0, start=0, end=1)
    with pytest.raises(IntegrityError):
        with db.atomic():
            Segment.create(call_id=call.id, side="caller", index=0, start=0, end=1)


def test_sqlite_schema(sqlite_db):
    assert run_migrations(sqlite_db) == []  # second run: nothing to do
    _roundtrip(sqlite_db)


@pytest.mark.postgres
def test_postgres_schema(pg_db):
    assert run_migrations(pg_db) == []
    _roundtrip(pg_db)


HOST_TABLE = """
CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    recording_url TEXT,
    recording_sid TEXT,
    video_url TEXT,
    video_status TEXT,
    fal_job_id TEXT,
    customer_name TEXT
)
"""


@pytest.mark.parametrize("dbname", ["sqlite_db", "pg_db"])
def test_migrates_a_host_table_in_place(dbname, request):
    """A host application's calls table keeps its rows and columns and gains ours."""
    db = request.getfixturevalue(dbname)
    db.execute_sql("DROP TABLE calls")
    db.execute_sql(HOST_TABLE)
    db.execute_sql("INSERT INTO calls (id, recording_sid, video_status, customer_name) VALUES ('CA" + "c" * 32 + "', 'RE" + "2" * 32 + "', 'completed', 'Ada')")
    changes = run_migrations(db)
    assert "added column calls.stage" in changes and "added column calls.video_processing_duration" in changes
    assert not any("recording_url" in c for c in changes)
    assert run_migrations(db) == []
    columns = {c.name for c in db.get_columns("calls")}
    assert {"customer_name", "caller_speech", "compose_enqueued_at", "updated_at"} <= columns
    call = Call.get_by_id("CA" + "c" * 32)
    assert call.video_status == "completed" and call.stage is None
    assert any(i.unique and i.columns == ["recording_sid"] for i in db.get_indexes("calls"))


@pytest.mark.postgres
def test_concurrent_migrations_serialise(pg_db, pg_url):
    """Two deploys migrating at once: both succeed, the schema is made once."""
    import threading

    from shared.db import _open

    pg_db.execute_sql("DROP TABLE calls, callreel_segments")
    results, errors = [], []

    def migrate():
        db = _open(pg_url)
        try:
            results.append(run_migrations(db))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 2]


@pytest.mark.postgres
def test_a_migration_waits_past_the_lock_timeout_of_requests(pg_db, pg_url, settings_env):
    """DB_LOCK_TIMEOUT ends a webhook's wait for a lock; a deploy's migration waiting for another's must not end."""
    import threading

    import psycopg2

    from shared.db import _open
    from shared.migrations import MIGRATION_LOCK

    settings_env(DB_LOCK_TIMEOUT="1")
    holder = psycopg2.connect(pg_url)
    holder.cursor().execute("BEGIN; SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))  # another deploy migrating
    threading.Timer(2.5, holder.rollback).start()
    db = _open(pg_url)
    try:
        assert run_migrations(db) == []
    finally:
        db.close()
        holder.close()
