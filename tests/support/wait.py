"""One way for a test to wait for something another thread or process does.

``wait_for(predicate, timeout=..., what="...")`` polls until the predicate is
truthy and returns that value, so a test can assert on what it waited for. On
timeout it fails with an AssertionError naming what was awaited and the last
value seen, plus ``describe()`` (a worker's log, a call's row) when given. With
``process``, a process that exits while the test waits fails at once: waiting
out the timeout for a dead server only hides why it died.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

__all__ = ["wait_for", "log_tail"]

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 60.0,
    interval: float = 0.1,
    what: str = "the condition",
    describe: Callable[[], str] | None = None,
    process: subprocess.Popen | None = None,
) -> T:
    """Poll ``predicate`` every ``interval`` s until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}) while waiting for {what}{_details(describe)}")
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r}){_details(describe)}")
        time.sleep(interval)


def log_tail(path: Path, chars: int = 4000) -> Callable[[], str]:
    """A ``describe`` for ``wait_for``: the end of a process's log file, read when the wait fails."""
    return lambda: path.read_text(errors="replace")[-chars:] if path.exists() else f"(no log at {path})"


def _details(describe: Callable[[], str] | None) -> str:
    return f"\n{describe()}" if describe is not None else ""
