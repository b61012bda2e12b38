"""The generation stage's entries: what each of the service's actors calls.

``generate_side(call_id, side)`` begins the stage for one side through the
pipeline's skeleton (``shared.skeleton.entered``) and submits that side's
segments (:mod:`.jobs`) and, with no transcript supplied, the call's
speech-to-text jobs (:mod:`.stt`); ``poll_segment(segment_id)`` follows one
fal.ai video job, ``poll_transcript(job_id)`` one speech-to-text job.
Generation is the one stage with two messages a call (one a side) and no
hand-on of its own: when both sides have ended, the fan-in (:mod:`.fanin`)
records the stage's end and starts the next stage, exactly once.
"""

from __future__ import annotations

from shared import keys, skeleton
from shared.errors import PermanentError
from shared.models import SIDES, Stage

from . import jobs, stt
from .jobs import give_up_segment, poll_segment
from .stt import poll_transcript

__all__ = ["generate_side", "poll_segment", "poll_transcript", "give_up_side", "give_up_segment", "give_up_transcript"]


def generate_side(call_id: str, side: str) -> None:
    """Plan and submit one side's fal.ai segments; redelivered, it only re-runs the fan-in."""
    if side not in SIDES:
        raise PermanentError(f"invalid side {side!r}: expected caller or callee")
    with skeleton.entered(Stage.GENERATION, call_id) as call:
        if call is not None:
            stt.begin(call)  # first: the transcript is marked as awaited before a side can end
            jobs.generate(call, side)


def give_up_side(call_id: str | None, side: str | None, exception: BaseException) -> None:
    """generate_side failed for good: the side fails, and speech-to-text jobs never submitted fail with it."""
    jobs.give_up_side(call_id, side, exception)
    if call_id is not None and side in SIDES and keys.CALL_ID_RE.match(str(call_id)):
        stt.give_up_call(call_id, exception)


def give_up_transcript(job_id: int | None, exception: BaseException) -> None:
    stt.give_up_job(job_id, exception)
