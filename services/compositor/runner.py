"""FFmpeg as a child process: its own timeout, its progress in the log, its error summarised.

FFmpeg runs in a session (process group) of its own, so a timeout, a Dramatiq
time limit or a worker shutdown kills it together with anything it spawned,
and a hung encode never outlives the message that started it. If the worker
itself dies (SIGKILL, out of memory), ``setpriv --pdeathsig`` (util-linux,
present on every Debian) has the kernel kill FFmpeg too: an orphaned encode
would otherwise run on for minutes into a temp folder nobody removes.
Progress comes from ``-progress pipe:1`` (machine-readable ``key=value``
blocks) rather than from parsing the human status line. Besides the log line
every PROGRESS_EVERY seconds, a run with a known length sends its fraction done
to the ``callreel.compositor.ffmpeg.progress`` logger every PROGRESS_TICK
seconds, at DEBUG: off in the services, where nothing lowers that logger's
level, and what ``callreel render`` listens to for its percentage (the
compositor knows nothing of who watches).
"""

from __future__ import annotations

import collections
import logging
import shutil
import subprocess
import threading
import time
from typing import IO, Any, Sequence

from shared import children

__all__ = ["FFmpegError", "FFmpegTimeout", "run_ffmpeg", "summarise"]

log = logging.getLogger("callreel.compositor.ffmpeg")
# Records with ``progress`` (0.0-1.0) and ``what``, plus the run's extra fields.
progress_log = logging.getLogger("callreel.compositor.ffmpeg.progress")

# How much of FFmpeg's stderr is kept for the error message.
STDERR_LINES = 40
# Seconds between two progress lines in the log.
PROGRESS_EVERY = 5.0
# Seconds between two progress records for a watcher in this process.
PROGRESS_TICK = 0.5
# The shortest wait between two looks at the clock (PROGRESS_EVERY may be set lower in tests).
MIN_WAIT = 0.05
# Seconds FFmpeg gets to exit after SIGTERM before it is killed.
TERM_GRACE = 3.0


class FFmpegError(RuntimeError):
    """FFmpeg exited with an error (``stderr`` holds its last lines)."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class FFmpegTimeout(FFmpegError):
    """FFmpeg ran past its timeout and was killed."""


def summarise(stderr: str, limit: int = 600) -> str:
    """The lines of FFmpeg's stderr that say what went wrong, shortest useful form.

    FFmpeg ends with generic lines ("Conversion failed!"); the cause is usually
    the line or two before, so the last few distinct lines are kept.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    kept: list[str] = []
    for line in reversed(lines):
        if line not in kept:
            kept.append(line)
        if len(kept) == 4:
            break
    text = " | ".join(reversed(kept)) or "no error output"
    return text if len(text) <= limit else "…" + text[-limit:]


def _drain(stream: IO[str], sink: collections.deque[str]) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))


def _read_progress(stream: IO[str], state: dict[str, str]) -> None:
    block: dict[str, str] = {}
    for line in stream:
        key, _, value = line.strip().partition("=")
        if not key:
            continue
        block[key] = value
        if key == "progress":  # the last key of every block
            state.update(block)
            block = {}


def _seconds(state: dict[str, str]) -> float | None:
    # out_time_us is microseconds; FFmpeg 5's out_time_ms is too, despite its name.
    for key in ("out_time_us", "out_time_ms"):
        raw = state.get(key, "")
        if raw.lstrip("-").isdigit():
            return max(0.0, int(raw) / 1_000_000)
    return None


def _log_progress(what: str, state: dict[str, str], total: float | None, extra: dict[str, Any]) -> None:
    done = _seconds(state)
    if done is None:
        return
    speed = state.get("speed", "").strip() or "?"
    if total:
        log.info("%s %d%% (%.1f s of %.1f s, speed %s)", what, min(100, round(100 * done / total)), done, total, speed, extra=extra)
    else:
        log.info("%s at %.1f s (speed %s)", what, done, speed, extra=extra)


def _tick(what: str, state: dict[str, str], total: float | None, extra: dict[str, Any]) -> None:
    done = _seconds(state)
    if total and done is not None and progress_log.isEnabledFor(logging.DEBUG):
        fraction = min(1.0, done / total)
        progress_log.debug("%s %.0f%%", what, 100 * fraction, extra={**extra, "progress": fraction, "what": what})


def run_ffmpeg(
    args: Sequence[str],
    *,
    timeout: float,
    what: str = "ffmpeg",
    total_seconds: float | None = None,
    log_extra: dict[str, Any] | None = None,
) -> None:
    """Run ``args`` (an FFmpeg command, binary first) to completion or raise FFmpegError.

    ``total_seconds`` (the output's expected length) turns progress into a percentage.
    """
    extra = dict(log_extra or {})
    if shutil.which(args[0]) is None:
        raise FFmpegError(f"cannot run {args[0]}: not found or not executable")
    command = [args[0], "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1", *args[1:]]
    log.debug("running %s", subprocess.list2cmdline(command), extra=extra)
    started = time.monotonic()
    try:
        proc = children.spawn(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise FFmpegError(f"cannot run {args[0]}: {exc}") from exc

    stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
    state: dict[str, str] = {}
    readers = [
        threading.Thread(target=_drain, args=(proc.stderr, stderr), daemon=True),
        threading.Thread(target=_read_progress, args=(proc.stdout, state), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = started + timeout
    next_log = started + PROGRESS_EVERY
    try:
        # Wait on the process itself, waking only to report progress: FFmpeg
        # writes its last progress block before it finishes the file
        # (+faststart rewrites it), so a wait for progress lines slept up to
        # a second past FFmpeg's exit (tests/services/compositor/test_runner.py).
        while True:
            now = time.monotonic()
            if now >= deadline:
                children.kill_group(proc, TERM_GRACE)
                raise FFmpegTimeout(
                    f"{what} timed out after {timeout:g} s", returncode=proc.returncode, stderr="\n".join(stderr)
                )
            try:
                proc.wait(timeout=max(MIN_WAIT, min(PROGRESS_TICK, next_log - now, deadline - now)))
                break
            except subprocess.TimeoutExpired:
                _tick(what, state, total_seconds, extra)
                if time.monotonic() >= next_log:
                    _log_progress(what, state, total_seconds, extra)
                    next_log = time.monotonic() + PROGRESS_EVERY
    finally:
        # Whatever ends the wait (timeout, a time limit raised into this thread,
        # shutdown), FFmpeg does not survive it.
        children.kill_group(proc, TERM_GRACE)
        for reader in readers:
            reader.join(timeout=5)
    text = "\n".join(stderr)
    if proc.returncode != 0:
        raise FFmpegError(f"{what} failed (exit {proc.returncode}): {summarise(text)}", returncode=proc.returncode, stderr=text)
    log.info("%s finished in %.2f s", what, time.monotonic() - started, extra={**extra, "duration": round(time.monotonic() - started, 3)})
