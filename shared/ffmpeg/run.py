"""Running FFmpeg and ffprobe as child processes with a deadline of their own.

Dramatiq's time limit interrupts the worker thread, not a child process: a
stuck FFmpeg would outlive the message that started it. So every run here has
its own timeout, and the child starts in a session (process group) of its own
(``children``), so the whole group is killed whatever ended the wait: the
timeout, Dramatiq's time limit raised into this thread, a worker shutting
down. If the worker itself dies, the kernel ends the child (``children``).

A log the caller reads afterwards (the split's, silencedetect's) goes to a
file, never to a pipe: nothing can deadlock on a full pipe and a chatty FFmpeg
costs disk, not worker memory. Otherwise only stderr's last lines are kept,
for the error message. Progress comes from ``-progress pipe:1``
(machine-readable ``key=value`` blocks), not from the human status line.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .. import metrics
from . import children
from .errors import FFmpegError, FFmpegFailed, FFmpegKilled, FFmpegTimeout

__all__ = ["Progress", "run", "output", "summarise", "tail", "PROGRESS_EVERY"]

# How much of stderr is kept for the error's ``stderr``.
STDERR_LINES = 40
# Lines of a log file an error's ``detail`` quotes.
TAIL_LINES = 5
# Default seconds between two progress reports.
PROGRESS_EVERY = 5.0
# The shortest wait between two looks at the clock (a caller may report progress more often in tests).
MIN_WAIT = 0.05


@dataclass(frozen=True)
class Progress:
    """How far a run has got, from FFmpeg's last ``-progress`` block."""

    seconds: float  # of output written
    speed: str  # FFmpeg's own figure ("1.52x"); "?" until it says


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


def _last_lines(path: str | Path, lines: int) -> list[str]:
    try:
        with open(path, errors="replace") as log:
            return list(collections.deque((line.strip() for line in log if line.strip()), maxlen=lines))
    except FileNotFoundError:
        return []


def tail(path: str | Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a log file, joined with ' | ' (for error messages)."""
    return " | ".join(_last_lines(path, lines))


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


def _progress(state: dict[str, str]) -> Progress | None:
    # out_time_us is microseconds; FFmpeg 5's out_time_ms is too, despite its name.
    for key in ("out_time_us", "out_time_ms"):
        raw = state.get(key, "")
        if raw.lstrip("-").isdigit():
            return Progress(seconds=max(0.0, int(raw) / 1_000_000), speed=state.get("speed", "").strip() or "?")
    return None


def _wait(
    proc: subprocess.Popen,
    deadline: float,
    state: dict[str, str],
    progress: Callable[[Progress], None] | None,
    every: float,
) -> bool:
    """Whether ``proc`` exited before ``deadline``, reporting progress on the way."""
    # Wait on the process itself, waking only to report progress: FFmpeg
    # writes its last progress block before it finishes the file
    # (+faststart rewrites it), so a wait for progress lines would
    # sleep up to a second past FFmpeg's exit (tests/shared/ffmpeg/test_run.py).
    while (left := deadline - time.monotonic()) > 0:
        try:
            proc.wait(timeout=max(MIN_WAIT, min(every, left) if progress else left))
            return True
        except subprocess.TimeoutExpired:
            done = _progress(state)
            if progress is not None and done is not None:
                progress(done)
    return False


def run(
    args: Sequence[str],
    *,
    timeout: float,
    what: str | None = None,
    stdout: str | Path | None = None,
    stderr: str | Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: float = PROGRESS_EVERY,
    grace: float = 0.0,
) -> None:
    """Run ``args`` (binary first) to completion within ``timeout`` seconds, or kill its process group.

    ``stdout`` and ``stderr`` name files the output is written to (stdout is
    discarded and stderr's last lines kept otherwise). ``progress`` adds
    ``-progress pipe:1`` and is called about every ``progress_every`` seconds
    with how far FFmpeg has got. ``grace``: seconds between SIGTERM and
    SIGKILL, for an FFmpeg that should close its files. ``what`` names the run
    in errors (the program's name by default).

    Raises FFmpegTimeout, FFmpegKilled (a signal from outside: the OOM
    killer, an operator; a TransientError), FFmpegFailed (``detail``: the end
    of stderr), or FFmpegError when the program cannot be started.
    """
    what = what or Path(args[0]).name
    if shutil.which(args[0]) is None:
        raise FFmpegError(f"cannot run {args[0]}: not found or not executable")
    command = [args[0], "-progress", "pipe:1", *args[1:]] if progress else list(args)
    kept: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
    state: dict[str, str] = {}
    started = time.monotonic()
    files = ExitStack()
    # Every run's wall time goes to Prometheus, failed ones too (a timeout is the slowest of all).
    files.callback(lambda: metrics.ffmpeg_ran(what, time.monotonic() - started))
    with files:
        err: IO[bytes] | int = files.enter_context(open(stderr, "wb")) if stderr else subprocess.PIPE
        out: IO[bytes] | int = subprocess.PIPE if progress else files.enter_context(open(stdout or os.devnull, "wb"))
        try:
            proc = children.spawn(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, errors="replace")
        except OSError as exc:
            raise FFmpegError(f"cannot run {args[0]}: {exc}") from exc
        readers = [threading.Thread(target=_drain, args=(proc.stderr, kept), daemon=True)] if proc.stderr else []
        if proc.stdout:
            readers.append(threading.Thread(target=_read_progress, args=(proc.stdout, state), daemon=True))
        for reader in readers:
            reader.start()
        try:
            if not _wait(proc, time.monotonic() + timeout, state, progress, progress_every):
                children.kill_group(proc, grace)
                raise FFmpegTimeout(what, timeout, returncode=proc.returncode, stderr=_stderr(kept, stderr))
        finally:
            # Whatever ends the wait, FFmpeg does not survive it.
            children.kill_group(proc, grace)
            for reader in readers:
                reader.join(timeout=5)
    if proc.returncode != 0:
        text = _stderr(kept, stderr)
        detail = tail(stderr) if stderr else summarise(text)
        if proc.returncode < 0:  # a signal from outside: our own kills (the timeout, the finally) raised above
            raise FFmpegKilled(what, proc.returncode, detail if text else "", stderr=text)
        raise FFmpegFailed(what, proc.returncode, detail, stderr=text)


def _stderr(kept: collections.deque[str], log: str | Path | None) -> str:
    return "\n".join(_last_lines(log, STDERR_LINES) if log else kept)


def output(args: Sequence[str], *, timeout: float, what: str | None = None) -> str:
    """What ``args`` writes to stdout (ffprobe's report, FFmpeg's version or help), run as ``run`` runs it."""
    with tempfile.TemporaryDirectory(prefix="callreel-ffmpeg-") as folder:
        report = Path(folder) / "stdout"
        run(args, timeout=timeout, what=what, stdout=report)
        return report.read_text(errors="replace")
