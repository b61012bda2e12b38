"""The sweeper: calls that stopped moving are sent on again, or ended with a reason.

Every stage moves a call by messages, and a message can be lost in ways no
worker sees: the webhook stored the call but RabbitMQ refused the job (the
answer was 503 and Twilio's retry is a duplicate, which sends nothing); a
message was dead-lettered or purged by hand; a give-up handler could not reach
the database to mark its call failed. Such a call sits in a stage forever,
``pending`` or ``generating``, and nobody is working on it.

A call is **stuck** when it has not ended and nothing about it has changed for
``STAGE_DEADLINE`` seconds: not its row (every step of every stage writes
``updated_at``) and not its segments (each fal.ai poll touches its segment).
For each stuck call the sweeper first claims it with one conditional UPDATE
(the row must still carry the ``updated_at`` it read, so a call that moved
meanwhile, or one another sweeper took, is left alone) and counts the sweep in
``sweep_count``; then:

- while ``sweep_count`` ≤ ``SWEEP_MAX_RETRIES``: ``shared.retry.retry_call(force=True)``
  re-enqueues it from its first unfinished stage (finished stages are kept);
- after that: the call fails with a reason that says where it was stuck, for
  how long and what to do (``callreel retry <id>``, which resets the count).

A call that looks stuck may only be waiting: its message sits in its stage's
queue behind a long backlog, or no worker of that stage is running. Sending it
again then made a duplicate (3 calls' 6 generation messages became 12 with no
generation worker), and failing it after ``SWEEP_MAX_RETRIES`` failed calls
that would have run. So, with ``RABBITMQ_MANAGEMENT_URL`` set, the sweeper
first reads each stage's queue (``shared.queues``) and leaves alone:

- every stuck call of a stage whose queue has **no consumer**: it is reported
  as ``alerted`` (and logged as an error, once per stage), because only
  starting that stage's workers helps, and they will find its message;
- every stuck call of a stage whose queue still holds messages (ready, being
  worked on or delayed): ``waiting``. A lost message is told from a waiting one
  only once the queue has drained; until then the call waits like the rest.

When the management API does not answer, no call is acted on that pass
(``skipped``): a waiting call cannot be told from a lost one. Without
``RABBITMQ_MANAGEMENT_URL`` the sweeper cannot see the queues and acts on
every stuck call as above; ``callreel sweep`` warns about it at start.

``STAGE_DEADLINE`` must be longer than the longest single step a stage takes
without writing to the row (a compose is bounded by ``COMPOSE_TIMEOUT``, a
split by twice ``SPLIT_TIMEOUT``), or a slow but healthy call is re-enqueued
while it works; redelivery is harmless (every actor is idempotent) but wasted.
``check_deadline`` says so at start.

Run it with ``callreel sweep`` (once: a cron job) or ``callreel sweep --every 300``
(a small long-running process); several sweepers at once are safe.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from peewee import fn

from . import events
from .models import Call, Segment, VideoStatus, utcnow
from .pipeline import PIPELINE, STAGES
from .progress import fail_call
from .queues import QueueReader, QueueState, QueuesUnavailable
from .retry import RetryError, retry_call
from .settings import Settings, get_settings

__all__ = ["Swept", "stuck_calls", "sweep", "check_deadline", "check_queues", "BATCH"]

log = logging.getLogger("callreel.sweeper")

#: Calls handled per pass, oldest first; the next pass takes the rest.
BATCH = 200


@dataclass(frozen=True)
class Swept:
    call_id: str
    stage: str
    idle_seconds: int
    action: str  # retried | failed | skipped | waiting (its message is in a queue) | alerted (no consumer)
    detail: str

    def __str__(self) -> str:
        return f"{self.call_id} {self.action} (stuck in {self.stage} for {self.idle_seconds}s): {self.detail}"


def _open() -> object:
    return Call.video_status.is_null() | Call.video_status.not_in(VideoStatus.TERMINAL)


def stuck_calls(settings: Settings | None = None, *, now: dt.datetime | None = None, limit: int = BATCH) -> list[Call]:
    """Unfinished calls with no change to the row or to any of its segments for STAGE_DEADLINE seconds."""
    settings = settings or get_settings()
    cutoff = (now or utcnow()) - dt.timedelta(seconds=settings.stage_deadline)
    recent_segment = Segment.select(Segment.id).where((Segment.call_id == Call.id) & (Segment.updated_at >= cutoff))
    return list(
        Call.select()
        .where(_open() & (Call.updated_at < cutoff) & ~fn.EXISTS(recent_segment))
        .order_by(Call.updated_at)
        .limit(limit)
    )


def _claim(call: Call, now: dt.datetime) -> bool:
    """Count this sweep, unless the call changed since it was read (it moved, or another sweeper has it)."""
    return bool(
        Call.update({Call.sweep_count: fn.COALESCE(Call.sweep_count, 0) + 1, Call.updated_at: now})
        .where((Call.id == call.id) & (Call.updated_at == call.updated_at) & _open())
        .execute()
    )


def _not_lost(stage: str, queue: QueueState) -> tuple[str, str] | None:
    """(action, detail) when the call's message may still be in its stage's queue; None when it is lost."""
    if queue.consumers == 0:
        return "alerted", f"no consumer on the {stage} queue: start the {stage} workers (its {queue.waiting} message(s) wait for them)"
    if queue.waiting:
        return "waiting", f"{queue.waiting} message(s) still in the {stage} queue: it waits its turn"
    return None


def sweep(
    settings: Settings | None = None,
    *,
    now: dt.datetime | None = None,
    limit: int = BATCH,
    queues: Callable[[], dict[str, QueueState]] | None = None,
) -> list[Swept]:
    """One pass over the stuck calls: re-enqueue each, or fail it once its retries are used up.

    ``queues`` reads each stage's queue; by default RabbitMQ's management API when
    RABBITMQ_MANAGEMENT_URL is set, else nothing is read and no call is held back.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    if queues is None:
        reader = QueueReader(settings)
        queues = reader.stages if reader.configured else None
    stuck = stuck_calls(settings, now=now, limit=limit)
    states: dict[str, QueueState] | None = None
    if queues is not None and stuck:
        try:
            states = queues()
        except QueuesUnavailable as exc:
            log.error("the sweeper cannot read the queues (%s): no stuck call is acted on this pass", exc)
            why = f"cannot read the queues ({exc}), so a waiting call cannot be told from a lost one"
            return [Swept(c.id, c.stage or STAGES[0], int((now - (c.updated_at or now)).total_seconds()), "skipped", why) for c in stuck]
    done: list[Swept] = []
    for call in stuck:
        stage = call.stage or STAGES[0]
        updated_at = call.updated_at or now  # set on every row stuck_calls picks (by updated_at)
        idle = int((now - updated_at).total_seconds())
        held = _not_lost(stage, states[stage]) if states is not None and stage in states else None
        if held is not None:
            done.append(Swept(call.id, stage, idle, *held))
            continue
        if not _claim(call, now):
            done.append(Swept(call.id, stage, idle, "skipped", "it changed while the sweeper looked"))
            continue
        sweeps = (call.sweep_count or 0) + 1
        context = {"call_id": call.id, "stage": stage}
        if sweeps > settings.sweep_max_retries:
            reason = (
                f"Stuck in the {stage} stage: nothing happened for {idle} s (STAGE_DEADLINE={settings.stage_deadline} s), "
                f"and the {settings.sweep_max_retries} automatic retries by the sweeper did not move it. "
                f"Check that the {stage} workers are running, then `callreel retry {call.id}`."
            )
            fail_call(call.id, reason)
            log.error("stuck call failed: %s", reason, extra=context)
            done.append(Swept(call.id, stage, idle, "failed", reason))
            continue
        try:
            restarted = retry_call(call.id, force=True)
        except RetryError as exc:
            reason = f"Stuck in the {stage} stage for {idle} s and cannot be re-run: {exc}"
            fail_call(call.id, reason)
            done.append(Swept(call.id, stage, idle, "failed", reason))
            continue
        except Exception as exc:  # the broker is down: the count stands, the next pass tries again
            log.error("could not re-enqueue a stuck call: %s", exc, extra=context)
            done.append(Swept(call.id, stage, idle, "skipped", f"re-enqueue failed: {exc}"))
            continue
        detail = f"re-enqueued from {restarted} (sweep {sweeps} of {settings.sweep_max_retries})"
        log.warning("stuck for %d s: %s", idle, detail, extra=context)
        events.record(call.id, events.Kind.SWEPT, stage=restarted, operator="sweeper", idle_seconds=idle, sweep=sweeps, detail=detail)
        done.append(Swept(call.id, stage, idle, "retried", detail))
    for stage in sorted({s.stage for s in done if s.action == "alerted"}):
        log.error("no consumer on the %s queue: its stuck calls wait until the %s workers run", stage, stage, extra={"stage": stage})
    return done


def check_deadline(settings: Settings | None = None) -> str | None:
    """A warning when STAGE_DEADLINE is shorter than a step that may legitimately run without a sign of life."""
    settings = settings or get_settings()
    steps = [row.quiet_step(settings) for row in PIPELINE if row.quiet_step is not None]
    name, longest = max(steps, key=lambda step: step[1])
    if settings.stage_deadline <= longest:
        return (
            f"STAGE_DEADLINE ({settings.stage_deadline} s) is not longer than {name} ({longest} s): "
            "a call busy in that step may be re-enqueued while it works"
        )
    return None


def check_queues(settings: Settings | None = None) -> str | None:
    """A warning when the sweeper cannot see the queues, so it may send again a call that is only waiting."""
    settings = settings or get_settings()
    if settings.rabbitmq_management_url:
        return None
    return (
        "RABBITMQ_MANAGEMENT_URL is not set: the sweeper cannot tell a call waiting in a queue from a lost one, "
        "and re-enqueues (or fails) every stuck call"
    )
