"""Which process made a temp folder, and whether that process is still running.

Every temp folder carries its maker's tag, ``{host}.{pid}.{start}``: a short
hash of the machine's (container's) hostname, the process id, and the
process's start time in clock ticks since boot (``/proc/{pid}/stat``). A
worker starting up removes at once the folders of its own host whose process
is gone (``shared.janitor``), instead of waiting out the stage's time limit.

The start time is there because pids are reused, most of all in a container,
where a restarted worker often gets the very pid its killed predecessor had:
pid and start time together name one process. The host is there because a
TMP_DIR shared between containers (each its own pid namespace) shows pids
that mean nothing here: a folder of another host is left to the age rule.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Owner", "me", "owner_of", "alive", "pid_exists"]

# The tag as it ends a folder's name, before mkdtemp's random part (letters, digits and "_", never "-").
_TAG = re.compile(r"-(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.(?P<start>\d+)-[a-z0-9_]+$")


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: int

    @property
    def tag(self) -> str:
        return f"{self.host}.{self.pid}.{self.start}"


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it does not exist (0 without /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():  # no procfs (macOS): the pid alone must do
            return 0 if pid_exists(pid) else None
        return None
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields are counted after its last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        # A zombie is dead, only not yet reaped: in a container whose pid 1 reaps nothing, never.
        return None
    return int(fields[19])  # field 22 of the whole line


def pid_exists(pid: int) -> bool:
    """Whether a process of this id runs on this host (one of another user's counts: signalling it is refused, not unknown)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def me() -> Owner:
    """This process."""
    pid = os.getpid()
    return Owner(_host(), pid, _start_time(pid) or 0)


def owner_of(path: Path) -> Owner | None:
    """The process that made the temp folder ``path`` (None for a name without a tag)."""
    match = _TAG.search(path.name)
    if match is None:
        return None
    return Owner(match["host"], int(match["pid"]), int(match["start"]))


def alive(owner: Owner) -> bool | None:
    """Whether ``owner`` still runs; None when it cannot be told from here (another host's process)."""
    if owner.host != _host():
        return None
    return _start_time(owner.pid) == owner.start
