"""Failed sign-ins counted in the database: one count per (bucket, client address, window).

The ingest service runs several gunicorn workers, often several replicas, and
restarts on every deploy: a count kept in one process's memory let a guesser
spread tries over workers and start over after each restart. Here every
process adds to the same row with one atomic upsert, and reads the total it
made in the same transaction.

Windows are fixed (``window_start`` is the time rounded down to the window),
so a row is a single integer and old rows are pruned with one DELETE. Its own
module and table, beside ``shared.models`` rather than in it:
``shared.migrations`` creates it with the other tables.
"""

from __future__ import annotations

from peewee import BigIntegerField, CharField, CompositeKey, IntegerField, Model

from .db import database

__all__ = ["AuthFailure", "add_failure"]


class AuthFailure(Model):
    """Wrong credentials from one client address for one kind of sign-in, in one window."""

    bucket = CharField(max_length=16)  # "api" (bearer token) or "login" (the operator page's form)
    client = CharField(max_length=64)  # an IPv6 address is 45 characters at most
    window_start = BigIntegerField()  # Unix seconds
    failures = IntegerField(default=0)

    class Meta:
        database = database
        table_name = "callreel_auth_failures"
        primary_key = CompositeKey("bucket", "client", "window_start")


def add_failure(bucket: str, client: str, window_start: int, *, prune_before: int) -> int:
    """Count one more failure; the window's total after it. Rows of windows before ``prune_before`` go."""
    key = (AuthFailure.bucket == bucket) & (AuthFailure.client == client) & (AuthFailure.window_start == window_start)
    with database.atomic():
        AuthFailure.insert(bucket=bucket, client=client, window_start=window_start, failures=1).on_conflict(
            conflict_target=[AuthFailure.bucket, AuthFailure.client, AuthFailure.window_start],
            update={AuthFailure.failures: AuthFailure.failures + 1},
        ).execute()
        total = AuthFailure.select(AuthFailure.failures).where(key).scalar() or 0
        AuthFailure.delete().where(AuthFailure.window_start < prune_before).execute()
    return total

