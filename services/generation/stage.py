"""The generation stage's entries: what each of the service's actors calls.

``generate_side(call_id, side)`` begins the stage for one side through the
pipeline's skeleton (``shared.skeleton.entered``) and submits that side's
segments (:mod:`.jobs`); ``poll_segment(segment_id)`` follows one fal.ai job.
Generation is the one stage with two messages a call (one a side) and no
hand-on of its own: when both sides have ended, the fan-in (:mod:`.fanin`)
records the stage's end and starts the next stage, exactly once.
"""

from __future__ import annotations

from shared import skeleton
from shared.errors import PermanentError
from shared.models import SIDES, Stage

from . import jobs
from .jobs import give_up_segment, give_up_side, poll_segment

__all__ = ["generate_side", "poll_segment", "give_up_side", "give_up_segment"]


def generate_side(call_id: str, side: str) -> None:
    """Plan and submit one side's fal.ai segments; redelivered, it only re-runs the fan-in."""
    if side not in SIDES:
        raise PermanentError(f"invalid side {side!r}: expected caller or callee")
    with skeleton.entered(Stage.GENERATION, call_id) as call:
        if call is not None:
            jobs.generate(call, side)
