"""shared.db: the web process's pooled connections, and the per-unit-of-work connections everyone else keeps."""

from __future__ import annotations

import pytest

from shared.db import connection, database, init_database

pytestmark = pytest.mark.postgres


def backend_pid() -> int:
    with connection() as db:
        return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def test_a_pooled_database_reuses_its_server_connection_between_units_of_work(pg_url):
    init_database(pg_url, pooled=True)
    try:
        first = backend_pid()
        assert backend_pid() == first  # closed, given back, taken again: the same server session
    finally:
        database.close()
        init_database(pg_url, force=True)


def test_without_a_pool_every_unit_of_work_has_its_own_connection(pg_url):
    init_database(pg_url, force=True)
    assert backend_pid() != backend_pid()


def test_a_pooled_connection_the_server_dropped_is_replaced_not_handed_out(pg_url):
    import psycopg2

    init_database(pg_url, pooled=True)
    try:
        first = backend_pid()
        with psycopg2.connect(pg_url) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (first,))  # as a database restart does
        second = backend_pid()
        assert second != first
    finally:
        database.close()
        init_database(pg_url, force=True)


def test_a_later_plain_call_keeps_the_pool_and_force_drops_it(pg_url, settings_env):
    settings_env(DATABASE_URL=pg_url)
    init_database(pg_url, pooled=True)
    try:
        pooled = database.obj
        init_database()  # the middleware's lazy call: must not undo the app's choice
        assert database.obj is pooled
        assert backend_pid() == backend_pid()
    finally:
        database.close()
        init_database(pg_url, force=True)
    assert backend_pid() != backend_pid()
