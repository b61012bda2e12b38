"""The shape every stage's message runs in, written once: validate → begin → log context → work → finish → hand on.

A service's ``actors.py`` declares its actors with :func:`actor` (the
contract, the time limit from the pipeline table, ``PermanentError`` never
retried); the actor calls its service's ``stage.py``, which runs the work in
:func:`run`::

    def split_channels(call_id):               # services/audio/stage.py
        skeleton.run(Stage.AUDIO, call_id, split_call, done=lambda call: call.audio_finished_at is not None)

``run`` is what makes RabbitMQ's at-least-once delivery harmless: a message
for a call that has moved past the stage is skipped by ``progress.begin``; one
whose work the row already records (``done``) only hands on again; one that
arrives between ``finish`` and ``advance`` (a worker killed in that gap) hands
on again too, and the next stage is idempotent the same way.

Where a stage differs it uses the pieces: generation's messages are one a
side, so each begins the stage with :func:`entered`, and its finish and
hand-on are the fan-in (``services/generation/fanin.py``), which records the
stage's end, starts the next stage from the table and advances the call once
both sides have ended, exactly once; the compositor takes a lock first and may
re-open an ended call before :func:`run` (``services/compositor/stage.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dramatiq
from dramatiq import Actor

from . import contracts, events, keys, outage, pipeline, progress
from .disk import as_no_space
from .errors import EnvironmentFailure, PermanentError
from .logs import log_context
from .models import Call
from .settings import get_settings

__all__ = ["actor", "check_call_id", "entered", "run", "hand_on", "environmental"]


def actor(contract: contracts.Contract, **options: Any) -> Callable[[Callable[..., Any]], Actor]:
    """Declare the actor for ``contract``: its stage's time limit, ``PermanentError`` not retried, outages outlasted.

    An environmental failure (the object store away, TMP_DIR full) is retried
    for STORAGE_OUTAGE_TOLERANCE whatever the actor's own budget (``shared.outage``).
    """
    stage = pipeline.row_of_queue(contract.queue_name)
    options.setdefault("time_limit", stage.time_limit(get_settings()) * 1000)
    options.setdefault("throws", (PermanentError,))

    def decorator(fn: Callable[..., Any]) -> Actor:
        @functools.wraps(fn)
        def outlasting(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (PermanentError, dramatiq.Retry):
                raise
            except Exception as exc:
                failure = environmental(exc)
                if failure is None:
                    raise
                raise outage.retry_later(stage.name, failure, call_id=kwargs.get("call_id")) from exc

        return contracts.actor(contract, **options)(outlasting)

    return decorator


def environmental(exc: BaseException) -> EnvironmentFailure | None:
    """``exc`` as the environmental failure it is (a full TMP_DIR included), or None when it is not one."""
    if isinstance(exc, EnvironmentFailure):
        return exc
    return as_no_space(exc, get_settings().tmp_dir)


def check_call_id(call_id: str) -> None:
    """A malformed call id is bad input: the message fails for good and no row is read or made."""
    try:
        keys.validate_call_id(call_id)
    except keys.InvalidCallId as exc:
        raise PermanentError(str(exc)) from None


@contextmanager
def entered(stage: str, call_id: str) -> Iterator[Call | None]:
    """Validate the id and begin ``stage`` (None: nothing to do); log lines inside carry the call and stage."""
    check_call_id(call_id)
    with log_context(call_id=call_id, stage=stage):
        call = progress.begin(call_id, stage)
        try:
            yield call
        except Exception as exc:
            # Every attempt that raises is in the call's history (retried or not: Dramatiq decides after).
            attempt = getattr(call, f"{stage}_attempts", None) if call is not None else None
            error = str(exc) or exc.__class__.__name__
            events.record(call_id, events.Kind.STAGE_FAILED, stage=stage, attempt=attempt, error=error, error_type=exc.__class__.__name__)
            raise


def hand_on(stage: str, call_id: str) -> None:
    """Start the next stage, then move the call on: a redelivery between the two only sends again."""
    following = pipeline.next_stage(stage)
    if following in pipeline.STAGES:
        pipeline.start(following, call_id)
    progress.advance(call_id, stage, following)


def run(
    stage: str,
    call_id: str,
    work: Callable[[Call], Mapping[str, Any]],
    *,
    done: Callable[[Call], bool] | None = None,
    after_finish: Callable[[Call, Mapping[str, Any]], None] | None = None,
) -> None:
    """One message of ``stage`` for ``call_id``: the whole skeleton.

    ``work(call)`` does the stage's work and returns the ``calls`` columns it
    produced; they are recorded with the stage's end (``progress.finish``).
    ``done(call)``: the row says the work is already done (a redelivery), so
    it is not done twice; without it the work always runs once begun.
    ``after_finish(call, columns)``: what may only happen once the work is recorded.
    """
    with entered(stage, call_id) as call:
        if call is None:
            return
        if done is None or not done(call):
            columns = work(call)
            progress.finish(call_id, stage, **columns)
            if after_finish is not None:
                after_finish(call, columns)
        hand_on(stage, call_id)
