"""The generation service's actors (queue ``generation``): run with ``dramatiq services.generation.actors``.

``generate_side(call_id, side)`` submits one side's segments to fal.ai;
``poll_segment(segment_id)`` follows one job, re-sent with a delay until the
job ends; ``poll_transcript(job_id)`` does the same for a speech-to-text job. The work is in :mod:`.stage`; this module only declares it.
"""

from __future__ import annotations

from shared.contracts import GENERATE_SIDE, POLL_SEGMENT, POLL_TRANSCRIPT, on_give_up
from shared.runtime import boot
from shared.settings import get_settings
from shared.skeleton import actor

from . import stage
from .config import check_configuration

__all__ = ["generate_side", "poll_segment", "poll_transcript"]

# Before the actors are declared: they bind to the broker boot() makes Dramatiq's.
broker = boot("generation")

_settings = get_settings()
check_configuration(_settings)

# Transient trouble (fal busy, S3 or the database away) is retried by Dramatiq
# with backoff; a retried poll must come back after at least one poll interval
# to pass jobs.claim_poll.
_backoff = max(5_000, int(_settings.fal_poll_interval * 1000))


@actor(GENERATE_SIDE, max_retries=8, min_backoff=_backoff, max_backoff=300_000)
def generate_side(call_id: str, side: str) -> None:
    stage.generate_side(call_id, side)


@actor(POLL_SEGMENT, max_retries=8, min_backoff=_backoff, max_backoff=300_000)
def poll_segment(segment_id: int) -> None:
    stage.poll_segment(segment_id)


@actor(POLL_TRANSCRIPT, max_retries=8, min_backoff=_backoff, max_backoff=300_000)
def poll_transcript(job_id: int) -> None:
    stage.poll_transcript(job_id)


@on_give_up(GENERATE_SIDE)
def _side_gave_up(kwargs: dict, exception: BaseException) -> None:
    stage.give_up_side(kwargs.get("call_id"), kwargs.get("side"), exception)


@on_give_up(POLL_SEGMENT)
def _poll_gave_up(kwargs: dict, exception: BaseException) -> None:
    stage.give_up_segment(kwargs.get("segment_id"), exception)


@on_give_up(POLL_TRANSCRIPT)
def _transcript_gave_up(kwargs: dict, exception: BaseException) -> None:
    stage.give_up_transcript(kwargs.get("job_id"), exception)
