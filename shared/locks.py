"""One live worker at a time on a call's stage, across processes and machines: a PostgreSQL advisory lock.

RabbitMQ puts a message back in its queue when the connection that delivered
it drops, even though the worker that has it is alive and still working: the
worker cannot ack any more, and the message goes to the next consumer (often
another thread of the same worker, once it reconnects). The stage then runs
twice at the same time. ``progress.begin`` cannot tell, because the first run
has not recorded anything yet. For a cheap stage that is harmless; for the
compose it is a second render, a second upload and a second status callback.

An advisory lock belongs to the database session that took it, so it is held
exactly as long as the worker that holds it is alive: a worker killed mid-stage
loses its connection and the lock with it, and the redelivered message can run
at once. Keys are 64-bit hashes of (stage, call id).

On SQLite (the embedded mode: one process, the in-process broker, no
redelivery) there is nothing to guard and every caller is let through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from .db import database

__all__ = ["exclusive", "lock_key"]


def lock_key(call_id: str, stage: str) -> int:
    """A signed 64-bit key, as ``pg_try_advisory_lock(bigint)`` takes it."""
    digest = hashlib.blake2b(f"callreel:{stage}:{call_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def exclusive(call_id: str, stage: str) -> Iterator[bool]:
    """Yield True if this worker now holds ``stage`` of ``call_id``, False if another live worker does."""
    db = database.obj
    if db is None or not db.__class__.__name__.startswith("Postgres"):
        yield True
        return
    key = lock_key(call_id, stage)
    held = bool(db.execute_sql("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
    try:
        yield held
    finally:
        if held and not db.is_closed():
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))
