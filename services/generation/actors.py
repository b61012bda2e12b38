"""The generation service's actors (queue ``generation``): run with ``dramatiq services.generation.actors``.

``generate_side(call_id, side)`` submits one side's segments to fal.ai;
``poll_segment(segment_id)`` follows one job, re-sent with a delay until the
job ends. The work is in :mod:`.jobs`; this module only declares it.
"""

from __future__ import annotations

from shared.runtime import boot

broker = boot("generation")

from shared.contracts import GENERATE_SIDE, POLL_SEGMENT, actor, on_give_up  # noqa: E402
from shared.fal_models import model_for  # noqa: E402
from shared.progress import PermanentError  # noqa: E402
from shared.settings import Settings, SettingsError, get_settings  # noqa: E402

from . import jobs  # noqa: E402

__all__ = ["generate_side", "poll_segment", "check_configuration"]


def check_configuration(settings: Settings) -> None:
    """With a fal key, everything fal needs must be right before the first message, not at it."""
    if not settings.uses_fal:
        return
    problems = []
    try:
        model_for(settings.fal_model)
    except ValueError as exc:
        problems.append(str(exc))
    if not settings.uses_s3:
        problems.append("FAL_KEY needs S3 storage (S3_BUCKET): fal.ai fetches the audio and avatars by presigned URL")
    try:
        from .fal import check_queue_host

        check_queue_host(settings.fal_queue_run_host)
    except RuntimeError as exc:
        problems.append(str(exc))
    if problems:
        raise SettingsError(problems)


_settings = get_settings()
check_configuration(_settings)

# Transient trouble (fal busy, S3 or the database away) is retried by Dramatiq
# with backoff; a retried poll must come back after at least one poll interval
# to pass jobs.claim_poll.
_backoff = max(5_000, int(_settings.fal_poll_interval * 1000))


@actor(GENERATE_SIDE, max_retries=8, min_backoff=_backoff, max_backoff=300_000, throws=(PermanentError,))
def generate_side(call_id: str, side: str) -> None:
    jobs.generate_side(call_id, side)


@actor(POLL_SEGMENT, max_retries=8, min_backoff=_backoff, max_backoff=300_000, throws=(PermanentError,))
def poll_segment(segment_id: int) -> None:
    jobs.poll_segment(segment_id)


@on_give_up(GENERATE_SIDE)
def _side_gave_up(kwargs: dict, exception: BaseException) -> None:
    jobs.give_up_side(kwargs.get("call_id"), kwargs.get("side"), exception)


@on_give_up(POLL_SEGMENT)
def _poll_gave_up(kwargs: dict, exception: BaseException) -> None:
    jobs.give_up_segment(kwargs.get("segment_id"), exception)
