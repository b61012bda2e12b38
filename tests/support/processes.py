"""Processes a test starts or watches: stop one with its whole group, tell whether a pid still runs.

A zombie counts as gone: it runs nothing, it only waits for its parent to
reap it (and a process that is not our child is never reaped by us).
"""

from __future__ import annotations

import os
import signal
import subprocess

from tests.support.wait import wait_for

__all__ = ["alive", "wait_gone", "stop_group"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped does not run)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait for a process, ours or not, to stop running; fail if it outlives ``timeout``."""
    wait_for(lambda: not alive(pid), timeout=timeout, interval=interval, what=f"process {pid} to stop")


def stop_group(process: subprocess.Popen | None, *, kill: bool = False, patience: float = 20) -> None:
    """SIGTERM a process we started in a session of its own, then SIGKILL its whole group if it lingers.

    ``kill``: SIGKILL the group at once, what an OOM kill or a lost machine does.
    """
    if process is None or process.poll() is not None:
        return
    if kill:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        return
    process.terminate()
    try:
        process.wait(timeout=patience)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
