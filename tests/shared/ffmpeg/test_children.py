import os
import signal
import subprocess
import sys

import pytest

from shared.ffmpeg import children
from tests.support.processes import alive, wait_gone
from tests.support.wait import wait_for


def test_kill_group_reaches_grandchildren():
    proc = children.spawn(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.stdout.readline())
    children.kill_group(proc, grace=0.5)
    assert proc.returncode is not None
    wait_gone(grandchild, timeout=10, interval=0.05)


@pytest.mark.skipif(not children.orphan_guard(), reason="setpriv (util-linux) is not installed")
def test_child_dies_with_a_killed_worker():
    """A worker killed with SIGKILL takes its FFmpeg with it instead of orphaning it."""
    script = (
        "import subprocess, sys, time\n"
        "from shared.ffmpeg import children\n"
        "p = children.spawn(['sleep', '60'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(worker.stdout.readline())
    # setpriv arms the death signal, then execs the program (the pid printed is
    # the sleep itself): wait for the exec, so the signal is armed before the kill.
    wait_for(lambda: open(f"/proc/{child}/comm").read().strip() == "sleep", timeout=10, interval=0.01, what="setpriv to exec sleep")
    assert alive(child)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    wait_gone(child, timeout=10, interval=0.05)
