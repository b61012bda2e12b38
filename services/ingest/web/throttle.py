"""Failed sign-ins counted per client address: past the limit, the client waits.

The API token is the one secret the status API and the operator page ask for,
so guessing it must be slow: each client address gets ``AUTH_MAX_FAILURES``
wrong tokens (bearer or login form) per ``AUTH_FAILURE_WINDOW`` seconds, then
429 with ``Retry-After`` until its oldest failure leaves the window. A right
token is not refused while the address has failures to spare; once blocked, it
waits like a wrong one, so a blocked client learns nothing.

The count is per gunicorn worker process and kept in memory: a restart forgets
it, and behind a proxy every client shares the proxy's address (a brute force
then locks everyone out for one window, which is the safer way to fail).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

__all__ = ["FailureThrottle"]

#: Addresses remembered at most: an attacker rotating addresses cannot grow the table without bound.
MAX_CLIENTS = 10_000


class FailureThrottle:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds ``client`` must wait before its next try; None when it may try now."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self.limit:
                return None
            return max(1, math.ceil(recent[0] + self.window - self._clock()))

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def _recent(self, client: str) -> collections.deque[float]:
        recent = self._failures.setdefault(client, collections.deque())
        cutoff = self._clock() - self.window
        while recent and recent[0] <= cutoff:
            recent.popleft()
        return recent
