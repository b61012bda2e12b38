"""A service's Dramatiq worker as a real process (``python -m dramatiq services.<name>.actors``).

It starts with an environment of the test's choosing (``tests.support.env.process_env``), so settings and
libraries that read the environment when they are imported (fal-client reads
FAL_QUEUE_RUN_HOST then) see exactly what the test set. Its output goes to a
log file the test can read and show when something goes wrong.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.env import process_env
from tests.support.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["DramatiqWorker"]


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
        self.env = process_env(inherit=False, **env)
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
        stop_group(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "DramatiqWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

