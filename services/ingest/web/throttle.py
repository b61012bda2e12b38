"""Wrong credentials counted per client address: past the limit, that address waits.

Each client address gets ``AUTH_MAX_FAILURES`` wrong credentials per
``AUTH_FAILURE_WINDOW`` seconds in each bucket (``api``: bearer tokens;
``login``: the operator page's form), then 429 with ``Retry-After``. A
request that presents the right credential is never throttled and never
counted: the host application and the operators keep working while someone
else, perhaps behind the same proxy address, guesses. That gives a guesser no
oracle worth having, because the start-up check refuses an API token shorter
than 32 characters: the throttle limits noise and load, the token's length
makes guessing hopeless. A request with no credential at all is a visitor,
not a guess, and costs no database round trip.

Counts live in the database (``shared.throttle_store``), so every gunicorn
worker and replica shares them and a restart forgets nothing. The client
address is the trusted proxy's (``TRUSTED_PROXY_HOPS``, see address.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from shared.db import connection
from shared.throttle_store import add_failure

__all__ = ["Throttle", "SharedFailureThrottle", "API_BUCKET", "LOGIN_BUCKET", "wall_clock"]

API_BUCKET = "api"
LOGIN_BUCKET = "login"


def wall_clock() -> float:
    """The time the shared windows are counted in: the same in every process (tests put their own clock here)."""
    return time.time()


class Throttle(Protocol):
    def count_failure(self, client: str) -> int | None:
        """Count a wrong credential from ``client``; the seconds it must wait when over the limit, else None."""


class SharedFailureThrottle:
    """The count in the database: one atomic upsert per wrong credential, shared by every process."""

    def __init__(self, bucket: str, limit: int, window: int, clock: Callable[[], float] | None = None) -> None:
        self.bucket = bucket
        self.limit = limit
        self.window = window
        self._clock = clock

    def count_failure(self, client: str) -> int | None:
        now = self._clock() if self._clock else wall_clock()
        start = int(now // self.window) * self.window
        with connection():
            total = add_failure(self.bucket, client, start, prune_before=start - self.window)
        if total <= self.limit:
            return None
        return max(1, math.ceil(start + self.window - now))
