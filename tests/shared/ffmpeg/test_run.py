"""FFmpeg as a child: progress reported, errors summarised, a timeout that kills the whole process group."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest

from shared.ffmpeg import FFmpegError, FFmpegFailed, FFmpegTimeout, Progress, run, summarise
from tests.support.wait import wait_for


def _alive_with(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:
            continue
        if marker in cmdline and "zombie" not in state:
            found.append(int(entry.name))
    return found


def test_the_run_ends_when_ffmpeg_exits_not_at_its_next_progress_block(tmp_path):
    # FFmpeg writes its last progress block ("progress=end") and only then
    # finishes the file (+faststart rewrites all of it) and exits. A wait that
    # woke only for progress lines slept up to a second past the exit: a
    # second of every render. This stand-in exits 0.3 s after its last block
    # and records when.
    exited = tmp_path / "exited"
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "print('out_time_us=1000000\\nspeed=1x\\nprogress=end', flush=True)\n"
        "time.sleep(0.3)\n"
        f"open({str(exited)!r}, 'w').write(repr(time.time()))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    seen: list[Progress] = []
    run([str(fake)], timeout=30, what="fake", progress=seen.append)
    lag = time.time() - float(exited.read_text())
    assert 0 <= lag < 0.5, f"returned {lag:.2f} s after FFmpeg exited"


def test_a_failure_says_what_ffmpeg_said(tmp_path):
    with pytest.raises(FFmpegError) as raised:
        run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=d=1", "-vf", "nosuchfilter", "-f", "null", "-"], timeout=60, what="bad graph")
    assert "bad graph failed (exit" in str(raised.value)
    assert "nosuchfilter" in str(raised.value)
    assert raised.value.returncode not in (0, None)
    assert isinstance(raised.value, FFmpegFailed) and "nosuchfilter" in raised.value.detail


def test_progress_is_reported_while_ffmpeg_runs(tmp_path):
    seen: list[Progress] = []
    run(  # -re: two seconds of encoding, so several progress blocks come
        ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=2", "-f", "null", "-"],
        timeout=60, progress=seen.append, progress_every=0.2,
    )
    assert len(seen) >= 2
    assert [p.seconds for p in seen] == sorted(p.seconds for p in seen) and seen[-1].seconds > 0


def test_a_log_file_gets_stderr_and_a_failure_quotes_its_end(tmp_path):
    log = tmp_path / "ffmpeg.log"
    with pytest.raises(FFmpegFailed) as raised:
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=d=1", "-vf", "nosuchfilter", "-f", "null", "-"], timeout=60, stderr=log)
    assert "nosuchfilter" in log.read_text() and "nosuchfilter" in raised.value.detail
    assert str(raised.value).startswith("ffmpeg failed (exit ")


def test_a_missing_binary_is_an_ffmpeg_error(tmp_path):
    with pytest.raises(FFmpegError, match="cannot run"):
        run([str(tmp_path / "no-ffmpeg"), "-version"], timeout=5)


def test_a_timeout_kills_ffmpeg_and_everything_it_started(tmp_path):
    # A wrapper that does not exec: FFmpeg is a grandchild, and must die with the group.
    wrapper = tmp_path / "ffmpeg-wrapper"
    wrapper.write_text('#!/bin/sh\nffmpeg "$@"\necho after\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    marker = str(tmp_path / "never-finished.nut")
    started = time.monotonic()
    with pytest.raises(FFmpegTimeout, match="timed out after 1 s"):
        run([str(wrapper), "-re", "-f", "lavfi", "-i", "testsrc=r=25", "-c:v", "rawvideo", "-y", marker], timeout=1, what="endless")
    assert time.monotonic() - started < 30
    wait_for(lambda: _alive_with(marker) == [], timeout=5, what="FFmpeg and its wrapper to be gone", describe=lambda: str(_alive_with(marker)))


def test_summarise_keeps_the_last_distinct_lines():
    stderr = "\n".join(["noise"] * 3 + ["[libx264] Error setting preset", "Error initializing output stream", "Conversion failed!", "Conversion failed!"])
    assert summarise(stderr) == "noise | [libx264] Error setting preset | Error initializing output stream | Conversion failed!"
    assert summarise("") == "no error output"
    assert len(summarise("x" * 5000, limit=100)) == 101


def test_ffmpeg_does_not_outlive_a_worker_that_dies(tmp_path):
    # A worker killed outright (SIGKILL, out of memory) runs no finally: the kernel must end FFmpeg.
    marker = str(tmp_path / "orphan.nut")
    script = (
        "import os, threading, time\n"
        "from shared.ffmpeg import run\n"
        "threading.Thread(target=run, daemon=True, args=(['ffmpeg', '-re', '-f', 'lavfi', '-i', 'testsrc=r=25',"
        f" '-c:v', 'rawvideo', '-y', {marker!r}],), kwargs={{'timeout': 60}}).start()\n"
        "time.sleep(1.5)\n"
        "os._exit(9)\n"
    )
    import subprocess
    import sys

    worker = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3], timeout=60)
    assert worker.returncode == 9
    assert Path(marker).exists()  # FFmpeg was running…
    # …and went with the worker
    wait_for(lambda: _alive_with(marker) == [], timeout=5, what="FFmpeg to go with the worker", describe=lambda: str(_alive_with(marker)))
