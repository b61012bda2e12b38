"""Call rows for tests: ``make_call(**columns)`` and readable numbered ids (``sid``).

``make_call`` gives every column the model's own default (pending, at the
ingest stage, from Twilio, created now) and a fresh CallSid from
``shared.keys.new_call_id``, so a test spells out only the columns it is about.
It needs the models bound to a database (the ``sqlite_db`` or ``pg_db`` fixture).
"""

from __future__ import annotations

import datetime as dt

from shared.keys import new_call_id
from shared.models import Call

__all__ = ["make_call", "sid"]


def make_call(id: str | None = None, *, updated_at: dt.datetime | None = None, **columns: object) -> Call:
    """Insert a call: ``id`` (a fresh CallSid unless given) and ``columns``; the rest as the model defaults them.

    ``updated_at`` is written after the insert, because every save stamps the
    row with the current time (a call idle for an hour, for the sweeper).
    """
    call = Call.create(id=id or new_call_id(), **columns)
    if updated_at is not None:
        Call.update(updated_at=updated_at).where(Call.id == call.id).execute()
        call.updated_at = updated_at
    return call


def sid(n: int, prefix: str = "CA") -> str:
    """A Twilio-shaped id numbered ``n`` (``CA`` + 32 hex digits): ids a test can order and tell apart."""
    return f"{prefix}{n:032x}"
