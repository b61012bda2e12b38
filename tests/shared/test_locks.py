"""shared.locks: one live holder per call and stage, on real PostgreSQL; SQLite lets everyone through."""

from __future__ import annotations

import threading

import pytest

from shared.db import database
from shared.locks import exclusive, lock_key

CALL = "CA" + "5" * 32


def test_keys_are_stable_64_bit_and_differ_by_stage_and_call():
    assert lock_key(CALL, "compositor") == lock_key(CALL, "compositor")
    assert -(2**63) <= lock_key(CALL, "compositor") < 2**63
    assert len({lock_key(CALL, "compositor"), lock_key(CALL, "audio"), lock_key("CA" + "6" * 32, "compositor")}) == 3


def _in_other_session(fn):
    """Run ``fn`` in another thread: peewee gives each thread its own connection (its own session)."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        finally:
            database.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return result["value"]


@pytest.mark.postgres
def test_a_second_session_is_refused_while_the_first_holds_and_let_in_after(pg_db):
    def try_it():
        with exclusive(CALL, "compositor") as mine:
            return mine

    with exclusive(CALL, "compositor") as mine:
        assert mine
        assert _in_other_session(try_it) is False
        assert _in_other_session(lambda: _try(CALL, "audio")) is True  # another stage is another lock
    assert _in_other_session(try_it) is True


@pytest.mark.postgres
def test_a_closed_session_gives_the_lock_up(pg_db):
    """A worker that dies loses its connection, and with it the lock."""
    holder_ready, release = threading.Event(), threading.Event()

    def hold_then_die():
        database.connect(reuse_if_open=True)
        database.execute_sql("SELECT pg_advisory_lock(%s)", (lock_key(CALL, "compositor"),))
        holder_ready.set()
        release.wait(30)
        database.close()  # as a killed process's connection is closed by the server

    thread = threading.Thread(target=hold_then_die)
    thread.start()
    holder_ready.wait(30)
    assert _in_other_session(lambda: _try(CALL, "compositor")) is False
    release.set()
    thread.join(30)
    assert _in_other_session(lambda: _try(CALL, "compositor")) is True


def _try(call_id: str, stage: str) -> bool:
    with exclusive(call_id, stage) as mine:
        return mine


def test_sqlite_lets_every_caller_through(sqlite_db):
    with exclusive(CALL, "compositor") as first:
        assert first and _try(CALL, "compositor")


HOLDER = """
import sys
from shared.db import init_database
from shared.locks import exclusive
init_database(sys.argv[1])
with exclusive(sys.argv[2], "compositor") as mine:
    print("held" if mine else "refused", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.postgres
@pytest.mark.parametrize("hash_seed", ["1", "2"])
def test_another_process_holding_the_call_is_seen_here(pg_db, pg_url, hash_seed):
    """Two worker processes must derive the same key: each has its own string-hash salt (PYTHONHASHSEED),
    so a key from ``hash()`` would differ and both would run the stage."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg_url, CALL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _in_other_session(lambda: _try(CALL, "compositor")) is False
        assert _in_other_session(lambda: _try("CA" + "6" * 32, "compositor")) is True
    finally:
        holder.communicate("\n", timeout=30)
    assert _in_other_session(lambda: _try(CALL, "compositor")) is True
