"""The two ways a stage's work can fail, spelled once for every service.

- :class:`PermanentError`: the input is bad (a mono recording, a refused
  URL, a 401 from Twilio). Another try would meet the same answer, so the
  call fails with this message and the message is not retried: every actor
  lists it in Dramatiq's ``throws`` (``shared.skeleton.actor`` does).
- :class:`TransientError`: the world is busy (a network error, a 5xx, fal.ai
  saying 429, FFmpeg killed by its timeout). Dramatiq runs the message again
  with backoff until its retries are used up; then the give-up handler ends
  the call with this message.

Any other exception is treated as transient too (Dramatiq retries it); raise
``TransientError`` where the retry is the point, so it reads as intended.
"""

from __future__ import annotations

__all__ = ["PermanentError", "TransientError"]


class PermanentError(Exception):
    """Bad input: the call fails with this message and the message is not retried."""


class TransientError(Exception):
    """Trouble another attempt may not meet: the message is retried with backoff."""
