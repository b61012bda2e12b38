"""Fixtures every test may use: settings from a clean environment, databases, S3, brokers.

- ``settings_env(**vars)``: set environment variables for this test and reload settings.
- ``sqlite_db`` / ``pg_db``: the models bound to a migrated, empty database.
- ``s3``: a fresh bucket on moto's S3 server (real HTTP), configured as the store.
- ``local_store``: a local-folder store in tmp_path.
- ``stub_broker``: the in-process broker with a worker helper; ``rabbitmq_url``: a private vhost.

Before the first test, the servers and programs the selected tests need are
checked (tests/support/preconditions.py): a machine that lacks one stops the
run with one line per missing thing and the command that brings it.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support import preconditions, services

#: Folders whose tests share something bigger than a test: under pytest-xdist (``make test`` runs
#: ``-n 2``) each folder's tests all run on one worker, in order, as one unit of work (the biggest
#: units are handed out first). e2e: one pipeline of real processes; bench: the benchmark's input cache.
XDIST_GROUPS = ("e2e", "bench")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's loadscope scheduling with these folders as the scopes and every other test a scope of its own.

    (Not ``--dist loadgroup`` with ``xdist_group`` marks: pytest-xdist 3.8 puts the group into
    ``item._nodeid``, which pytest 9 no longer reads, so the groups were silently ignored.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class FolderGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((group for group in XDIST_GROUPS if nodeid.startswith(f"tests/{group}/")), nodeid)

    return FolderGroups(config, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not session.items:
        return
    problems = preconditions.missing(session.items)
    if problems:
        # Not skips: a run that cannot test what was asked for has failed (exit status 2).
        writer = session.config.get_terminal_writer()
        writer.line()
        for problem in problems:
            writer.line(f"missing: {problem}", red=True)
        pytest.exit("this machine lacks what the selected tests need (above)", returncode=pytest.ExitCode.INTERRUPTED)


# Settings come from the environment; a developer's own variables must not leak in.
_SETTING_VARS = None


def _setting_vars() -> list[str]:
    global _SETTING_VARS
    if _SETTING_VARS is None:
        from shared.settings import declared

        _SETTING_VARS = [f.metadata["env"] for f in declared()]
    return _SETTING_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in _setting_vars():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLREEL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TMP_DIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    _reload()
    yield
    _reload(after=True)


def _reload(after: bool = False) -> None:
    from shared.settings import reload_settings
    from shared.storage import reset_storage

    if not after:
        reload_settings()
    reset_storage()


@pytest.fixture
def settings_env(monkeypatch):
    """Set environment variables for this test; returns the reloaded settings."""

    def apply(**values: str):
        for key, value in values.items():
            monkeypatch.setenv(key, str(value))
        from shared.settings import reload_settings
        from shared.storage import reset_storage

        reset_storage()
        return reload_settings()

    return apply


@pytest.fixture
def sqlite_db(tmp_path, settings_env):
    from shared.db import init_database
    from shared.migrations import ALL_TABLES, run_migrations

    url = f"sqlite:///{tmp_path / 'test.db'}"
    settings_env(DATABASE_URL=url)
    db = init_database(url, force=True)
    run_migrations(db)
    yield db
    db.close()


@pytest.fixture(scope="session")
def pg_url():
    if not services.port_open("127.0.0.1", 5432):
        pytest.fail("PostgreSQL is not answering on 127.0.0.1:5432 (start it: see docs/development.md)")
    url = services.create_pg_database()
    yield url
    from shared.db import database

    if database.obj is not None:
        database.close()
    services.drop_pg_database(url)


#: The session database's schema as the migrations leave it (see ``pg_db``); None until first migrated.
_MIGRATED_SCHEMA: list[tuple] | None = None

# Everything in the public schema a test could change: columns, indexes, constraints, triggers.
_SCHEMA_QUERY = """
SELECT 'column', table_name, column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'index', tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'constraint', c.conrelid::regclass::text, pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'
UNION ALL SELECT 'trigger', t.tgrelid::regclass::text, t.tgname
  FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace n ON n.oid = r.relnamespace
  WHERE n.nspname = 'public' AND NOT t.tgisinternal
ORDER BY 1, 2, 3
"""


def _public_tables(db) -> list[str]:
    return [row[0] for row in db.execute_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def _empty_tables(db, tables: list[str]) -> None:
    """DELETE every row, referencing tables first, and restart the sequences: as TRUNCATE would, but in
    milliseconds (TRUNCATE makes new files for every table and index, a fifth of a second on a busy machine)."""
    refs = db.execute_sql(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public' AND contype = 'f'"
    ).fetchall()
    left = list(tables)
    with db.atomic():
        while left:
            # A table no remaining table points at (its own self-references aside) can be emptied now.
            free = [t for t in left if not any(parent.strip('"') == t and child.strip('"') in left and child != parent for child, parent in refs)]
            for table in free or left:  # (a cycle: leave it to the database to refuse)
                db.execute_sql(f'DELETE FROM "{table}"')
                left.remove(table)
        for (sequence,) in db.execute_sql("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'").fetchall():
            db.execute_sql(f'ALTER SEQUENCE "{sequence}" RESTART')


@pytest.fixture
def pg_db(pg_url, settings_env):
    """The models on the session's PostgreSQL database, emptied for this test.

    Dropping and migrating every table for every test cost about a second each; so when the
    schema is still exactly what the migrations made (a test that altered it changes it), its
    tables are only emptied. Otherwise every table is dropped and migrated anew.
    """
    global _MIGRATED_SCHEMA
    from shared.db import init_database
    from shared.migrations import run_migrations

    settings_env(DATABASE_URL=pg_url)
    db = init_database(pg_url, force=True)
    with db.connection_context():
        tables = _public_tables(db)
        if _MIGRATED_SCHEMA is not None and list(db.execute_sql(_SCHEMA_QUERY)) == _MIGRATED_SCHEMA:
            _empty_tables(db, tables)
        else:
            if tables:
                db.execute_sql("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
            run_migrations(db)
            _MIGRATED_SCHEMA = list(db.execute_sql(_SCHEMA_QUERY))
    yield db
    db.close()


@pytest.fixture(scope="session")
def s3_server():
    server = services.S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, settings_env):
    """A fresh bucket on the loopback S3 server, configured as callreel's store."""
    from shared.storage import get_storage

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    settings_env(**s3_server.env(bucket))
    storage = get_storage()
    storage.ensure_bucket()
    return storage


@pytest.fixture
def local_store(tmp_path, settings_env):
    from shared.storage import get_storage

    settings_env(LOCAL_STORAGE_DIR=str(tmp_path / "objects"))
    return get_storage()


@pytest.fixture(scope="session")
def rabbitmq_url():
    if not services.port_open(services.RABBIT_HOST, 5672):
        pytest.fail("RabbitMQ is not answering on 127.0.0.1:5672 (start it: rabbitmq-server -detached)")
    url = services.create_vhost()
    yield url
    services.delete_vhost(url)


@pytest.fixture
def own_rabbitmq_url(rabbitmq_url):
    """A vhost of this test's own, for tests that leave messages in the services' queues or read them all."""
    url = services.create_vhost()
    yield url
    services.delete_vhost(url)


@pytest.fixture
def stub_broker(settings_env):
    """The in-process broker, Dramatiq's global one; flushed before and after.

    Built once per process: actors bind to the broker that exists when their
    module is imported, so it is never replaced under them.
    """
    from dramatiq.brokers.stub import StubBroker

    from shared.broker import setup_broker

    settings_env(BROKER_URL="memory://")
    broker = setup_broker()
    assert isinstance(broker, StubBroker), "tests in one process share the in-process broker"
    _reset_queues(broker)
    yield broker
    _reset_queues(broker)


def _reset_queues(broker) -> None:
    """Empty every queue and its count of unfinished messages.

    A test that takes messages off a queue by hand leaves the queue's count of
    unfinished tasks up, and a later ``broker.join`` on it would wait forever.
    The queues stay the same objects: consumers hold references to them.
    """
    broker.flush_all()
    for q in broker.queues.values():
        with q.all_tasks_done:
            q.unfinished_tasks = 0
            q.all_tasks_done.notify_all()


@pytest.fixture
def stub_worker(stub_broker):
    """A Dramatiq worker on the in-process broker (``broker.join(queue)`` waits for work)."""
    import dramatiq

    worker = dramatiq.Worker(stub_broker, worker_timeout=100, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()

