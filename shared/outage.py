"""Environmental failures (the object store away, TMP_DIR full) retried until STORAGE_OUTAGE_TOLERANCE has passed.

A stage's own retry budget is sized for its own trouble (a flaky FFmpeg run,
fal busy): spent on an S3 outage it ran out in seconds, and calls whose
webhook came during a 20 s outage failed for good. So every actor
(``shared.skeleton.actor``) turns an :class:`EnvironmentFailure` into a
``dramatiq.Retry`` with a delay of its own, doubling from
``FIRST_DELAY_MS`` to ``MAX_DELAY_MS``: the message comes back later, no
worker thread sleeps through the outage. The time of the first such failure
travels in the message's options, so the window survives redelivery; these
retries do not use up the stage's budget (the message's ``max_retries`` is
raised by one each). Once STORAGE_OUTAGE_TOLERANCE seconds have passed the
message fails for good, with the failure's own words as the call's reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from . import metrics
from .errors import EnvironmentFailure, PermanentError
from .settings import get_settings

__all__ = ["retry_later", "delay_ms", "SINCE_OPTION", "COUNT_OPTION", "FIRST_DELAY_MS", "MAX_DELAY_MS"]

log = logging.getLogger("callreel.outage")

#: Message options: when this message first met an environmental failure (epoch seconds), and how many since.
SINCE_OPTION = "environment_failing_since"
COUNT_OPTION = "environment_failures"
FIRST_DELAY_MS = 2_000
MAX_DELAY_MS = 60_000
#: Dramatiq's own default budget, for an actor declared without max_retries.
DEFAULT_MAX_RETRIES = 20


def delay_ms(failures: int, remaining_s: float) -> int:
    """The wait before the next try: doubling from FIRST_DELAY_MS, at most MAX_DELAY_MS, and not past the window."""
    delay = min(FIRST_DELAY_MS * 2 ** max(failures - 1, 0), MAX_DELAY_MS)
    return int(max(min(delay, remaining_s * 1000), FIRST_DELAY_MS))


def _option(message: dramatiq.Message, name: str, default: int) -> int:
    """The message's own value of a retry option, else its actor's, else ``default``."""
    if name in message.options:
        return int(message.options[name])
    try:
        actor = dramatiq.get_broker().get_actor(message.actor_name)
    except Exception:  # an actor of another broker (tests)
        return default
    return int(actor.options.get(name, default))


def retry_later(stage: str, failure: EnvironmentFailure, *, call_id: Any = None) -> Exception:
    """What the actor raises for ``failure``: a Retry with backoff, or PermanentError once the window has passed."""
    metrics.environment_failure(stage, failure.kind)
    tolerance = get_settings().storage_outage_tolerance
    message = CurrentMessage.get_current_message()
    now = time.time()
    failures, since = 1, now
    if message is not None:
        since = float(message.options.setdefault(SINCE_OPTION, now))
        failures = int(message.options.get(COUNT_OPTION, 0)) + 1
        message.options[COUNT_OPTION] = failures
    waited = now - since
    extra = {"call_id": call_id, "stage": stage}
    if waited >= tolerance:
        log.error("%s; still failing after %d s, giving up", failure, int(waited), extra=extra)
        return PermanentError(f"{failure} (still failing after {int(waited)} s: STORAGE_OUTAGE_TOLERANCE={tolerance})")
    delay = delay_ms(failures, tolerance - waited)
    if message is not None:
        # Never sooner than the actor's own backoff: a fal poll retried within half a poll interval stops its chain.
        delay = max(delay, _option(message, "min_backoff", 0))
        # This retry is the window's, not the stage's budget.
        message.options["max_retries"] = _option(message, "max_retries", DEFAULT_MAX_RETRIES) + 1
    log.warning("%s; trying again in %.0f s", failure, delay / 1000, extra=extra)
    return dramatiq.Retry(str(failure), delay=delay)
