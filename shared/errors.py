"""The two ways a stage's work can fail, spelled once for every service.

- :class:`PermanentError`: the input is bad (a mono recording, a refused
  URL, a 401 from Twilio). Another try would meet the same answer, so the
  call fails with this message and the message is not retried: every actor
  lists it in Dramatiq's ``throws`` (``shared.skeleton.actor`` does).
- :class:`TransientError`: the world is busy (a network error, a 5xx, fal.ai
  saying 429, FFmpeg killed by its timeout). Dramatiq runs the message again
  with backoff until its retries are used up; then the give-up handler ends
  the call with this message.

- :class:`EnvironmentFailure`: the machine or the store is in trouble, not
  the call (the object store refusing connections, TMP_DIR full). Retried
  with backoff for as long as ``STORAGE_OUTAGE_TOLERANCE`` allows, whatever
  the stage's own retry budget (``shared.outage``), and the message names
  what failed: :class:`StorageUnavailable` or :class:`NoSpace`.

Any other exception is treated as transient too (Dramatiq retries it); raise
``TransientError`` where the retry is the point, so it reads as intended.
"""

from __future__ import annotations

__all__ = ["PermanentError", "TransientError", "EnvironmentFailure", "StorageUnavailable", "NoSpace"]


class PermanentError(Exception):
    """Bad input: the call fails with this message and the message is not retried."""


class TransientError(Exception):
    """Trouble another attempt may not meet: the message is retried with backoff."""


class EnvironmentFailure(TransientError):
    """The store or the machine failed, not the call's input: retried until STORAGE_OUTAGE_TOLERANCE has passed."""

    #: The ``kind`` label of ``callreel_environment_failures_total``.
    kind = "environment"


class StorageUnavailable(EnvironmentFailure):
    """The object store did not do what was asked (unreachable, 5xx, throttling, its disk full)."""

    kind = "storage"


class NoSpace(EnvironmentFailure):
    """TMP_DIR has no room for the work (ENOSPC from a write or from FFmpeg, or too little free space to start)."""

    kind = "disk"
