"""One pipeline of real processes for the whole e2e package; each test sends its own calls through it.

Starting gunicorn and four Dramatiq workers costs seconds, so they are started
once (package scope) and shared. Tests that kill a worker or change its
settings get it back as deployed before the next test (``Pipeline.reset``);
a worker that died without being killed fails the test that was running.
"""

from __future__ import annotations

import logging

import pytest

from tests.e2e.harness import Pipeline


@pytest.fixture(scope="package")
def e2e_pipeline(pg_url, rabbitmq_url, s3_server, tmp_path_factory):
    import psycopg2

    from shared.migrations import ALL_TABLES

    # moto's server logs every request at INFO: thousands of lines in a failure report otherwise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # The session's database may hold tables of earlier tests: start from an empty schema.
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(ALL_TABLES)} CASCADE")
    pipeline = Pipeline(tmp_path_factory.mktemp("e2e"), pg_url=pg_url, broker_url=rabbitmq_url, s3_server=s3_server)
    try:
        pipeline.start()
        yield pipeline
    finally:
        pipeline.stop()


@pytest.fixture
def pipeline(e2e_pipeline, settings_env, pg_url):
    """The running pipeline, as deployed and without faults; this process reads its database."""
    from shared.db import init_database

    settings_env(DATABASE_URL=pg_url)
    db = init_database(pg_url, force=True)
    e2e_pipeline.reset()
    yield e2e_pipeline
    e2e_pipeline.proxy.clear()
    crashed = e2e_pipeline.crashed()
    db.close()
    assert not crashed, f"worker(s) {crashed} died during the test\n{e2e_pipeline.logs()}"
