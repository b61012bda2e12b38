"""The compositor's FFmpeg runs: quiet, with their progress in the log and time to close the file.

The mechanism (deadline, process group, errors) is ``shared.ffmpeg.run``'s.
Here: FFmpeg prints errors only, progress is logged every PROGRESS_EVERY
seconds (as a percentage when the output's length is known), and a run that
must end gets TERM_GRACE seconds to close its file before it is killed.
"""

from __future__ import annotations

import functools
import logging
import shlex
import time
from typing import Any, Sequence

from shared.ffmpeg import Progress, run

__all__ = ["run_ffmpeg"]

log = logging.getLogger("callreel.compositor.ffmpeg")

# Seconds between two progress lines in the log.
PROGRESS_EVERY = 5.0
# Seconds FFmpeg gets to exit after SIGTERM before it is killed.
TERM_GRACE = 3.0


def _log_progress(what: str, total: float | None, extra: dict[str, Any], done: Progress) -> None:
    if total:
        percent = min(100, round(100 * done.seconds / total))
        log.info("%s %d%% (%.1f s of %.1f s, speed %s)", what, percent, done.seconds, total, done.speed, extra=extra)
    else:
        log.info("%s at %.1f s (speed %s)", what, done.seconds, done.speed, extra=extra)


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
        progress=functools.partial(_log_progress, what, total_seconds, extra),
        progress_every=PROGRESS_EVERY,
        grace=TERM_GRACE,
    )
    elapsed = time.monotonic() - started
    log.info("%s finished in %.2f s", what, elapsed, extra={**extra, "duration": round(elapsed, 3)})
