"""The global fal.ai concurrency cap (shared/fal_slots.py): never more than N jobs, fair across calls, slots never lost."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from shared import fal_slots
from shared.fal_slots import FalSlot
from shared.models import Segment, SegmentState, utcnow
from tests.support.calls import make_call

POLL = 1.0


def segments_of(call_id: str, count: int) -> list[Segment]:
    return [Segment.create(call_id=call_id, side="caller", index=i, start=i * 10, end=i * 10 + 10) for i in range(count)]


def submitted(segment: Segment) -> None:
    """What the generation stage does once it holds a slot: claim the row (one more attempt)."""
    Segment.update({Segment.state: SegmentState.SUBMITTED, Segment.attempts: Segment.attempts + 1}).where(Segment.id == segment.id).execute()


@pytest.fixture(params=["sqlite_db", "pg_db"])
def db(request):
    return request.getfixturevalue(request.param)


def test_no_more_than_the_cap_hold_slots_across_threads(pg_db):
    """Twelve workers on PostgreSQL race for three slots: each gets one in time, never more than three at once."""
    calls = [make_call().id for _ in range(4)]
    segments = [s for call_id in calls for s in segments_of(call_id, 3)]
    holding, most, lock, errors = set(), 0, threading.Lock(), []

    def worker(segment: Segment) -> None:
        nonlocal most
        try:
            with pg_db.connection_context():
                deadline = time.monotonic() + 60
                while fal_slots.acquire(Segment.get_by_id(segment.id), 3, POLL) is None:
                    assert time.monotonic() < deadline, "never got a slot"
                    time.sleep(0.02)
                submitted(segment)
                with lock:
                    holding.add(segment.id)
                    most = max(most, len(holding))
                time.sleep(0.3)
                with lock:
                    holding.discard(segment.id)
                Segment.update({Segment.state: SegmentState.COMPLETED}).where(Segment.id == segment.id).execute()
                fal_slots.release(segment.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in segments]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert most == 3  # the cap was used whole, and never passed
    assert fal_slots.in_use(3) == 0 and FalSlot.select().count() == 3


def test_slots_go_round_robin_by_call_so_a_long_call_never_starves_short_ones(db):
    """A 30-minute call's segments all wait first; the short calls arriving after it still go next."""
    long_call = make_call().id
    long_segments = segments_of(long_call, 6)
    for segment in long_segments:
        assert fal_slots.acquire(segment, 0 + 1, POLL) in (None, 1)  # everyone registers; the first takes the only slot
    first = long_segments[0]
    submitted(first)
    short = [segments_of(make_call().id, 1)[0] for _ in range(2)]
    for segment in short:
        assert fal_slots.acquire(segment, 1, POLL) is None  # the one slot is busy: they wait
    alive = utcnow() - dt.timedelta(minutes=1)
    order = fal_slots.waiting_order(alive)
    # Turns: each call's first waiting segment before anybody's second; among equals the call waiting longest.
    assert order[:3] == [long_segments[1].id, short[0].id, short[1].id]
    assert order[3:] == [s.id for s in long_segments[2:]]
    # The slot frees: the long call's next segment is not first in line forever; the short calls come before its third.
    Segment.update({Segment.state: SegmentState.COMPLETED}).where(Segment.id == first.id).execute()
    fal_slots.release(first.id)
    assert fal_slots.acquire(Segment.get_by_id(short[1].id), 1, POLL) is None  # not its turn yet
    assert fal_slots.acquire(Segment.get_by_id(long_segments[1].id), 1, POLL) == 1
    submitted(long_segments[1])
    Segment.update({Segment.state: SegmentState.COMPLETED}).where(Segment.id == long_segments[1].id).execute()
    fal_slots.release(long_segments[1].id)
    assert fal_slots.acquire(Segment.get_by_id(long_segments[2].id), 1, POLL) is None  # the short calls first
    assert fal_slots.acquire(Segment.get_by_id(short[0].id), 1, POLL) == 1


def test_a_slot_whose_worker_died_is_free_again_when_its_lease_runs_out(db):
    one, two = segments_of(make_call().id, 1)[0], segments_of(make_call().id, 1)[0]
    assert fal_slots.acquire(one, 1, POLL) == 1
    submitted(one)
    assert fal_slots.acquire(two, 1, POLL) is None
    assert fal_slots.renew(Segment.get_by_id(one.id), POLL)  # a poll keeps it
    assert fal_slots.acquire(Segment.get_by_id(two.id), 1, POLL) is None
    # Nobody polls job one any more (its worker died): the lease runs out.
    FalSlot.update({FalSlot.leased_until: utcnow() - dt.timedelta(seconds=1)}).execute()
    assert fal_slots.acquire(Segment.get_by_id(two.id), 1, POLL) == 1


def test_a_slot_left_by_a_segment_that_moved_on_is_free_again(db):
    """A worker that stored a video (or failed a job) and died before releasing: the segment's state says the slot is free."""
    one, two = segments_of(make_call().id, 1)[0], segments_of(make_call().id, 1)[0]
    assert fal_slots.acquire(one, 1, POLL) == 1
    submitted(one)
    Segment.update({Segment.state: SegmentState.COMPLETED}).where(Segment.id == one.id).execute()
    assert fal_slots.acquire(two, 1, POLL) is None  # just taken: the grace keeps it (its claim may still be on the way)
    FalSlot.update({FalSlot.taken_at: utcnow() - dt.timedelta(seconds=fal_slots.TAKE_GRACE + 1)}).execute()
    assert fal_slots.acquire(Segment.get_by_id(two.id), 1, POLL) == 1


def test_a_waiter_whose_poll_chain_died_does_not_hold_up_the_queue(db):
    gone, alive = segments_of(make_call().id, 1)[0], segments_of(make_call().id, 1)[0]
    fal_slots.acquire(segments_of(make_call().id, 1)[0], 0, POLL)  # no cap: always a slot
    holder = segments_of(make_call().id, 1)[0]
    assert fal_slots.acquire(holder, 1, POLL) == 1
    submitted(holder)
    assert fal_slots.acquire(gone, 1, POLL) is None
    assert fal_slots.acquire(alive, 1, POLL) is None
    stale = utcnow() - dt.timedelta(seconds=fal_slots.lease_seconds(POLL) + 5)
    Segment.update({Segment.updated_at: stale}).where(Segment.id == gone.id).execute()  # its messages were lost
    fal_slots.release(holder.id)
    assert fal_slots.acquire(Segment.get_by_id(alive.id), 1, POLL) == 1
