"""A service's Dramatiq worker as a real process (``python -m dramatiq services.<name>.actors``).

It starts with an environment of the test's choosing, so settings and
libraries that read the environment when they are imported (fal-client reads
FAL_QUEUE_RUN_HOST then) see exactly what the test set. Its output goes to a
log file the test can read and show when something goes wrong.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["DramatiqWorker", "wait_until"]


class DramatiqWorker:
    def __init__(
        self, module: str, queues: list[str], env: dict[str, str], log_path: Path, *, threads: int = 2, processes: int = 1
    ) -> None:
        self.processes = processes
        self.args = [
            sys.executable, "-m", "dramatiq", module,
            "--processes", str(processes), "--threads", str(threads),
            "--queues", *queues,
            "--skip-logging", "--worker-shutdown-timeout", "5000",
        ]
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **env}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "DramatiqWorker":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def stop(self) -> None:
        """SIGTERM (finish the message in hand), then SIGKILL this worker's own process group if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "DramatiqWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(predicate: Callable[[], object], *, timeout: float = 60.0, interval: float = 0.1, describe: Callable[[], str] = lambda: "") -> object:
    """Poll ``predicate`` until it is truthy; fail with ``describe()`` (e.g. the worker's log) if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s\n{describe()}")
        time.sleep(interval)
