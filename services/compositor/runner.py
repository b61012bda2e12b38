"""The compositor's FFmpeg runs: quiet, with their progress in the log and time to close the file.

The mechanism (deadline, process group, errors) is ``shared.ffmpeg.run``'s.
Here: FFmpeg prints errors only, progress is logged every PROGRESS_EVERY
seconds (as a percentage when the output's length is known), and a run that
must end gets TERM_GRACE seconds to close its file before it is killed.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Sequence
from typing import Any

from shared.ffmpeg import Progress, run

__all__ = ["run_ffmpeg"]

log = logging.getLogger("callreel.compositor.ffmpeg")
# The fraction done, at DEBUG and only when a watcher lowered this logger's level
# (``callreel render`` draws its compose percentage from it): the worker's log stays quiet.
progress_log = logging.getLogger("callreel.compositor.ffmpeg.progress")

# Seconds between two progress lines in the log.
PROGRESS_EVERY = 5.0
# Seconds FFmpeg gets to exit after SIGTERM before it is killed.
TERM_GRACE = 3.0
# Seconds between two progress records for a watcher.
PROGRESS_TICK = 0.5


def _log_progress(what: str, total: float | None, extra: dict[str, Any], done: Progress) -> None:
    if total:
        percent = min(100, round(100 * done.seconds / total))
        log.info("%s %d%% (%.1f s of %.1f s, speed %s)", what, percent, done.seconds, total, done.speed, extra=extra)
    else:
        log.info("%s at %.1f s (speed %s)", what, done.seconds, done.speed, extra=extra)


class _Reporter:
    """FFmpeg's progress: the fraction done to a watcher every tick, a log line every PROGRESS_EVERY."""

    def __init__(self, what: str, total: float | None, extra: dict[str, Any]) -> None:
        self.what, self.total, self.extra = what, total, extra
        self.next_log = time.monotonic() + PROGRESS_EVERY

    def __call__(self, done: Progress) -> None:
        if self.total and progress_log.isEnabledFor(logging.DEBUG):
            fraction = min(1.0, done.seconds / self.total)
            progress_log.debug("%s %.0f%%", self.what, 100 * fraction, extra={**self.extra, "progress": fraction, "what": self.what})
        if time.monotonic() >= self.next_log:
            _log_progress(self.what, self.total, self.extra, done)
            self.next_log = time.monotonic() + PROGRESS_EVERY


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
    command = [args[0], "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", *args[1:]]
    log.debug("running %s", shlex.join(command), extra=extra)
    started = time.monotonic()
    run(
        command,
        timeout=timeout,
        what=what,
        progress=_Reporter(what, total_seconds, extra),
        progress_every=min(PROGRESS_TICK, PROGRESS_EVERY),
        grace=TERM_GRACE,
    )
    elapsed = time.monotonic() - started
    log.info("%s finished in %.2f s", what, elapsed, extra={**extra, "duration": round(elapsed, 3)})
