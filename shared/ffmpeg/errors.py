"""The one error family of FFmpeg and ffprobe runs.

Callers tell three cases apart: the program ran past its deadline (worth a
retry, or a message about the time limit), it exited with an error (``detail``
says why, in FFmpeg's own words), or it ran but what it reported makes the
file unusable. Which of these a stage treats as permanent is the stage's call.
"""

from __future__ import annotations

__all__ = ["FFmpegError", "FFmpegFailed", "FFmpegTimeout", "InvalidMedia"]


class FFmpegError(RuntimeError):
    """FFmpeg or ffprobe could not do what was asked (``stderr`` holds its last lines)."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class FFmpegFailed(FFmpegError):
    """The program exited with a non-zero status; ``detail`` is the end of what it wrote to stderr."""

    def __init__(self, what: str, returncode: int, detail: str, *, stderr: str = "") -> None:
        message = f"{what} failed (exit {returncode}): {detail or 'no error output'}"
        super().__init__(message, returncode=returncode, stderr=stderr or detail)
        self.what, self.detail = what, detail


class FFmpegTimeout(FFmpegError):
    """The program ran past its deadline and was killed with its whole process group."""

    def __init__(self, what: str, timeout: float, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(f"{what} timed out after {timeout:g} s", returncode=returncode, stderr=stderr)
        self.what, self.timeout = what, timeout


class InvalidMedia(FFmpegError, ValueError):
    """A file FFmpeg cannot use (missing stream, unreadable, empty).

    Also a ValueError, as the compositor's MediaError was before it became this.
    """
