"""FFmpeg as a child: progress in the log, errors summarised, a timeout that kills the whole process group."""

from __future__ import annotations

import logging
import stat
import sys
import time
from pathlib import Path

import pytest

from services.compositor import runner
from services.compositor.runner import FFmpegError, FFmpegTimeout, run_ffmpeg, summarise


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


def test_a_run_logs_its_progress_as_a_percentage(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(runner, "PROGRESS_EVERY", 0.2)
    out = tmp_path / "out.mp4"
    caplog.set_level(logging.INFO, logger="callreel.compositor.ffmpeg")
    run_ffmpeg(  # -re: three seconds of encoding, so several progress blocks come and get logged
        ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=3", "-c:v", "libx264", "-preset", "ultrafast", "-y", str(out)],
        timeout=60, what="test encode", total_seconds=3.0, log_extra={"call_id": "CA" + "0" * 32},
    )
    assert out.stat().st_size > 0
    lines = [r for r in caplog.records if r.name == "callreel.compositor.ffmpeg"]
    assert any("test encode" in r.getMessage() and "%" in r.getMessage() for r in lines)
    assert lines[-1].getMessage().startswith("test encode finished in")
    assert all(getattr(r, "call_id", None) == "CA" + "0" * 32 for r in lines)


def test_a_watcher_in_the_process_gets_the_fraction_done_every_tick(tmp_path, monkeypatch):
    # What `callreel render` shows as the compose percentage: DEBUG records, only when someone lowers the level.
    monkeypatch.setattr(runner, "PROGRESS_TICK", 0.2)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append  # type: ignore[method-assign]
    runner.progress_log.addHandler(handler)
    runner.progress_log.setLevel(logging.DEBUG)  # setLevel, not .level: it clears logging's cache of levels
    try:
        run_ffmpeg(
            ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=3", "-c:v", "libx264", "-preset", "ultrafast", "-y", str(tmp_path / "out.mp4")],
            timeout=60, what="compose", total_seconds=3.0, log_extra={"call_id": "CA" + "1" * 32},
        )
    finally:
        runner.progress_log.removeHandler(handler)
        runner.progress_log.setLevel(logging.NOTSET)
    fractions = [r.progress for r in seen]
    assert len(fractions) >= 5, fractions  # three seconds of -re encoding, a record every 0.2 s
    assert fractions == sorted(fractions) and 0 <= fractions[0] < 0.5 < fractions[-1] <= 1, fractions
    assert {(r.what, r.call_id) for r in seen} == {("compose", "CA" + "1" * 32)}


def test_without_a_watcher_no_progress_record_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_TICK", 0.1)
    made = []
    monkeypatch.setattr(runner.progress_log, "handle", made.append)
    run_ffmpeg(
        ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-y", str(tmp_path / "out.mp4")],
        timeout=60, what="compose", total_seconds=1.0,
    )
    assert made == []


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
    run_ffmpeg([str(fake)], timeout=30, what="fake")
    lag = time.time() - float(exited.read_text())
    assert 0 <= lag < 0.5, f"returned {lag:.2f} s after FFmpeg exited"


def test_a_failure_says_what_ffmpeg_said(tmp_path):
    with pytest.raises(FFmpegError) as raised:
        run_ffmpeg(["ffmpeg", "-f", "lavfi", "-i", "testsrc=d=1", "-vf", "nosuchfilter", "-f", "null", "-"], timeout=60, what="bad graph")
    assert "bad graph failed (exit" in str(raised.value)
    assert "nosuchfilter" in str(raised.value)
    assert raised.value.returncode not in (0, None)


def test_a_missing_binary_is_an_ffmpeg_error(tmp_path):
    with pytest.raises(FFmpegError, match="cannot run"):
        run_ffmpeg([str(tmp_path / "no-ffmpeg"), "-version"], timeout=5)


def test_a_timeout_kills_ffmpeg_and_everything_it_started(tmp_path):
    # A wrapper that does not exec: FFmpeg is a grandchild, and must die with the group.
    wrapper = tmp_path / "ffmpeg-wrapper"
    wrapper.write_text('#!/bin/sh\nffmpeg "$@"\necho after\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    marker = str(tmp_path / "never-finished.nut")
    started = time.monotonic()
    with pytest.raises(FFmpegTimeout, match="timed out after 1 s"):
        run_ffmpeg([str(wrapper), "-re", "-f", "lavfi", "-i", "testsrc=r=25", "-c:v", "rawvideo", "-y", marker], timeout=1, what="endless")
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 5
    while _alive_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive_with(marker) == []


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
        "from services.compositor.runner import run_ffmpeg\n"
        "threading.Thread(target=run_ffmpeg, daemon=True, args=(['ffmpeg', '-re', '-f', 'lavfi', '-i', 'testsrc=r=25',"
        f" '-c:v', 'rawvideo', '-y', {marker!r}],), kwargs={{'timeout': 60}}).start()\n"
        "time.sleep(1.5)\n"
        "os._exit(9)\n"
    )
    import subprocess
    import sys

    worker = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3], timeout=60)
    assert worker.returncode == 9
    assert Path(marker).exists()  # FFmpeg was running…
    deadline = time.monotonic() + 5
    while _alive_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive_with(marker) == []  # …and went with the worker
