"""The global fal.ai concurrency cap: ``FAL_MAX_CONCURRENT_JOBS`` slots in the database, shared by every generation worker.

fal runs at most N jobs of an account at once and queues the rest (its docs:
"requests are never rejected due to concurrency limits"), but a burst of
submits meets its rate limit (429), and jobs parked in fal's queue are jobs
callreel can no longer order. So a segment's job goes to fal only while it
holds one of N slots here (``callreel_fal_slots``, one row per slot), and the
order in which waiting segments get a slot is callreel's: **round-robin by
call**. Each waiting call offers its first waiting segment (by index); the
next free slot goes to the call that got one longest ago (or, never served,
that has waited longest), and when several slots are free at once each call
gets one before any gets a second. A 30-minute call's 60 segments therefore
take slots in turn with the short calls behind it: a 1-minute call waits for
at most one slot per call ahead of it, never for a long call's tail.

Taking a slot is one short transaction: on PostgreSQL every slot row is
locked (``SELECT … FOR UPDATE``), so takers queue on the rows, not in a
process; on SQLite (the one-machine demo) ``BEGIN IMMEDIATE`` serialises them
the same way. A slot is held for one fal attempt (segment id and attempt
number) under a **lease** each status poll renews; it is free again when
released, when its lease runs out (a worker died and nobody polls the job), or
when its segment has moved on (completed, failed, retried) without releasing
it, so a slot is never lost. A waiting segment counts in the order only while
its own poll chain is alive (it touched its row lately), so a waiter whose
messages were lost cannot hold up those behind it.
"""

from __future__ import annotations

import datetime as dt
import logging

from peewee import CharField, DateTimeField, IntegerField

from .models import BaseModel, Segment, SegmentState, utcnow

__all__ = [
    "FalSlot", "acquire", "renew", "release", "release_older", "waiting_order", "lease_seconds", "lease_delta", "in_use", "TAKE_GRACE",
]

log = logging.getLogger("callreel.fal_slots")

# A slot just taken belongs to a segment still pending (its claim follows in a moment): never free.
TAKE_GRACE = 60.0


class FalSlot(BaseModel):
    slot = IntegerField(primary_key=True)
    segment_id = IntegerField(null=True)
    attempt = IntegerField(null=True)  # the segment's attempt number the slot is for
    call_id = CharField(null=True, max_length=64)
    taken_at = DateTimeField(null=True)
    leased_until = DateTimeField(null=True)

    class Meta:
        table_name = "callreel_fal_slots"


# A free slot's columns.
_EMPTY = {FalSlot.segment_id: None, FalSlot.attempt: None, FalSlot.call_id: None, FalSlot.taken_at: None, FalSlot.leased_until: None}


def lease_seconds(poll_interval: float) -> float:
    """How long a slot outlives its last poll: several poll intervals, and never under two minutes."""
    return max(120.0, 5 * poll_interval)


def lease_delta(poll_interval: float) -> dt.timedelta:
    return dt.timedelta(seconds=lease_seconds(poll_interval))


def _is_postgres() -> bool:
    return FalSlot._meta.database.obj.__class__.__name__.startswith("Postgres")


def _transaction():
    db = FalSlot._meta.database
    if _is_postgres():
        return db.atomic()
    return db.atomic("IMMEDIATE")  # SQLite: take the write lock now, so takers run one at a time


def _free(slot: FalSlot, holders: dict[int, Segment], now: dt.datetime) -> bool:
    if slot.segment_id is None or slot.leased_until is None or slot.leased_until < now:
        return True
    if slot.taken_at is not None and (now - slot.taken_at).total_seconds() < TAKE_GRACE:
        return False
    segment = holders.get(slot.segment_id)
    # Its job ended (or a newer attempt runs without it) and nobody released the slot.
    return segment is None or segment.state != SegmentState.SUBMITTED or segment.attempts != slot.attempt


def _slots(limit: int) -> list[FalSlot]:
    """The first ``limit`` slot rows, created if missing, locked for this transaction on PostgreSQL."""
    have = {s.slot for s in FalSlot.select(FalSlot.slot).where(FalSlot.slot <= limit)}
    missing = [{"slot": n} for n in range(1, limit + 1) if n not in have]
    if missing:
        FalSlot.insert_many(missing).on_conflict_ignore().execute()
    query = FalSlot.select().where(FalSlot.slot <= limit).order_by(FalSlot.slot)
    if _is_postgres():
        query = query.for_update()
    return list(query)


def waiting_order(alive_since: dt.datetime, limit: int | None = None) -> list[int]:
    """Ids of the segments waiting for a slot, in the order they get one (round-robin by call, oldest call first)."""
    db = FalSlot._meta.database
    p = db.param
    # A call's place: when it last got a slot (or began to wait, if never), so calls take slots in turn;
    # within one pass each call's first waiting segment comes before any call's second.
    sql = f"""
        SELECT id FROM (
            SELECT s.id,
                   ROW_NUMBER() OVER (PARTITION BY s.call_id ORDER BY s."index", s.side) AS turn,
                   COALESCE(
                       (SELECT MAX(o.submitted_at) FROM callreel_segments o WHERE o.call_id = s.call_id),
                       MIN(s.slot_wait_since) OVER (PARTITION BY s.call_id)
                   ) AS place
            FROM callreel_segments s
            WHERE s.state = {p} AND s.slot_wait_since IS NOT NULL AND s.updated_at >= {p}
        ) waiting
        ORDER BY turn, place, id
    """
    params: list = [SegmentState.PENDING, alive_since]
    if limit is not None:
        sql += f" LIMIT {p}"
        params.append(limit)
    return [row[0] for row in db.execute_sql(sql, params).fetchall()]


def acquire(segment: Segment, limit: int, poll_interval: float) -> int | None:
    """A slot for the segment's next attempt (its number), or None: it waits, in fair order, for its turn.

    ``limit`` 0 means no cap (every segment gets slot 0 at once).
    """
    if limit <= 0:
        return 0
    now = utcnow()
    lease = dt.timedelta(seconds=lease_seconds(poll_interval))
    attempt = segment.attempts + 1
    with _transaction():
        slots = _slots(limit)
        for slot in slots:  # a redelivered message: it has its slot already
            if slot.segment_id == segment.id and slot.attempt == attempt and slot.leased_until and slot.leased_until >= now:
                return slot.slot
        # Its place in the queue: from its first try, its poll chain touching the row keeps it alive.
        Segment.update({Segment.slot_wait_since: now, Segment.updated_at: now}).where(
            (Segment.id == segment.id) & Segment.slot_wait_since.is_null()
        ).execute()
        Segment.update({Segment.updated_at: now}).where(Segment.id == segment.id).execute()
        holder_ids = [s.segment_id for s in slots if s.segment_id is not None]
        holders = {s.id: s for s in Segment.select().where(Segment.id.in_(holder_ids))} if holder_ids else {}
        free = [s for s in slots if _free(s, holders, now)]
        if not free:
            return None
        ahead = waiting_order(now - lease, limit=len(free))
        if segment.id not in ahead:
            return None
        slot = free[0]
        FalSlot.update(
            {
                FalSlot.segment_id: segment.id,
                FalSlot.attempt: attempt,
                FalSlot.call_id: segment.call_id,
                FalSlot.taken_at: now,
                FalSlot.leased_until: now + lease,
            }
        ).where(FalSlot.slot == slot.slot).execute()
        # The call's turn is spent now (its claim stamps submitted_at again in a moment).
        Segment.update({Segment.slot_wait_since: None, Segment.submitted_at: now}).where(Segment.id == segment.id).execute()
        return slot.slot


def renew(segment: Segment, poll_interval: float) -> bool:
    """Extend the lease of the slot the segment's running attempt holds (each status poll does)."""
    until = utcnow() + dt.timedelta(seconds=lease_seconds(poll_interval))
    return bool(
        FalSlot.update({FalSlot.leased_until: until})
        .where((FalSlot.segment_id == segment.id) & (FalSlot.attempt == segment.attempts))
        .execute()
    )


def release(segment_id: int) -> int:
    """Free the slots the segment holds; how many there were."""
    return int(
        FalSlot.update(_EMPTY)
        .where(FalSlot.segment_id == segment_id)
        .execute()
    )


def release_older(segment: Segment) -> int:
    """Free a slot the segment holds for an attempt before the one it is about to make (a retry)."""
    return int(
        FalSlot.update(_EMPTY)
        .where((FalSlot.segment_id == segment.id) & (FalSlot.attempt <= segment.attempts))
        .execute()
    )


def in_use(limit: int) -> int:
    """Slots held now (for the operator and the tests)."""
    now = utcnow()
    slots = list(FalSlot.select().where(FalSlot.slot <= limit))
    holder_ids = [s.segment_id for s in slots if s.segment_id is not None]
    holders = {s.id: s for s in Segment.select().where(Segment.id.in_(holder_ids))} if holder_ids else {}
    return sum(1 for s in slots if not _free(s, holders, now))
