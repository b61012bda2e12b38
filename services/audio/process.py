"""Running FFmpeg and ffprobe as child processes with a deadline of their own.

Dramatiq's time limit interrupts the worker thread, not a child process: a
stuck FFmpeg would outlive the message that started it. So every run here has
its own timeout, and the child is started in a process group of its own so the
whole group can be killed, whatever ended the wait (the timeout, Dramatiq's
time limit, a worker shutting down).

Output goes to files in the call's temp folder, never to pipes: nothing can
deadlock on a full pipe and a chatty FFmpeg costs disk, not worker memory.
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from pathlib import Path
from typing import Sequence

from shared import children

__all__ = ["ProcessFailed", "ProcessTimeout", "run", "tail"]


class ProcessFailed(Exception):
    """The program exited with a non-zero status."""

    def __init__(self, program: str, returncode: int, detail: str) -> None:
        self.program, self.returncode, self.detail = program, returncode, detail
        super().__init__(f"{program} exited with status {returncode}: {detail or 'no output'}")


class ProcessTimeout(Exception):
    """The program ran past its deadline and was killed."""

    def __init__(self, program: str, timeout: float) -> None:
        self.program, self.timeout = program, timeout
        super().__init__(f"{program} did not finish within {timeout:g} s and was killed")


def tail(path: str | Path, lines: int = 5) -> str:
    """The last lines of a log file, joined with ' | ' (for error messages)."""
    try:
        with open(path, errors="replace") as log:
            last = deque((line.strip() for line in log if line.strip()), maxlen=lines)
    except FileNotFoundError:
        return ""
    return " | ".join(last)


def run(args: Sequence[str], *, timeout: float, stdout: str | Path | None = None, stderr: str | Path) -> None:
    """Run ``args`` to completion within ``timeout`` seconds, or kill its process group.

    ``stdout`` and ``stderr`` name files the output is written to. Raises
    ProcessTimeout, or ProcessFailed with the end of ``stderr`` as the detail.
    """
    program = Path(args[0]).name
    with open(stderr, "wb") as err, open(stdout or os.devnull, "wb") as out:
        # A session of its own: killing the group reaches it and anything it
        # started, never the worker; and it dies with the worker (see shared.children).
        proc = children.spawn(list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProcessTimeout(program, timeout) from None
        finally:
            if proc.returncode is None:
                children.kill_group(proc)
    if returncode != 0:
        raise ProcessFailed(program, returncode, tail(stderr))
