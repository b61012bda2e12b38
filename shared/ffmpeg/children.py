"""Child processes (FFmpeg, ffprobe) that never outlive the work that started them.

A child starts as the leader of a session of its own, so killing its process
group ends it and anything it spawned, and never the worker. Where util-linux's
``setpriv`` exists (every Debian, our images), the child also gets
``--pdeathsig KILL``: if the worker itself dies (SIGKILL, out of memory, a
second SIGTERM during a redeploy) the kernel kills the child too, instead of
leaving an orphaned encode running into a temp folder nobody removes.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

__all__ = ["orphan_guard", "spawn", "kill_group"]


@functools.cache
def orphan_guard() -> tuple[str, ...]:
    """The command prefix that kills a child when its parent dies (empty without setpriv)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


def spawn(args: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Start ``args`` in a session of its own, guarded against outliving this process."""
    return subprocess.Popen([*orphan_guard(), *args], start_new_session=True, **popen_kwargs)


def kill_group(proc: subprocess.Popen, grace: float = 0.0) -> None:
    """End the child's whole process group: SIGTERM and ``grace`` seconds to close files, then SIGKILL."""
    if proc.poll() is not None:
        return
    steps = ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)) if grace > 0 else ((signal.SIGKILL, 5.0),)
    for sig, wait in steps:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
