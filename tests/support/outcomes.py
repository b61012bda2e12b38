"""What each message an in-process worker ran ended with, so a test asserts the actor ran, not only what it left.

"No row after an invalid id" is true as well when the actor crashed or never
ran; the recorded outcome tells them apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dramatiq

__all__ = ["Outcome", "recording_outcomes"]


@dataclass(frozen=True)
class Outcome:
    actor: str
    kwargs: dict
    exception: BaseException | None
    retries: int


@contextmanager
def recording_outcomes(broker: dramatiq.Broker) -> Iterator[list[Outcome]]:
    """Every message processed while inside, in order: its actor, arguments and the exception it ended with."""
    seen: list[Outcome] = []

    class Record(dramatiq.Middleware):
        def after_process_message(self, broker, message, *, result=None, exception=None):
            seen.append(Outcome(message.actor_name, dict(message.kwargs), exception, message.options.get("retries", 0)))

    record = Record()
    broker.add_middleware(record)
    try:
        yield seen
    finally:
        broker.middleware.remove(record)
