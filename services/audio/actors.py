"""The audio service's worker: ``dramatiq services.audio.actors`` (queue ``audio``).

``split_channels`` follows ``shared.progress``'s pattern: a call whose audio
is already done is not split again, and one that has moved on is skipped, so
RabbitMQ's at-least-once delivery never splits or hands on twice.
"""

from __future__ import annotations

from shared.runtime import boot

broker = boot("audio")

from shared import janitor, keys, progress  # noqa: E402  (actors bind to the broker boot() set up)
from shared.contracts import GENERATE_SIDE, SPLIT_CHANNELS, actor, send  # noqa: E402
from shared.models import SIDES, Stage  # noqa: E402
from shared.progress import PermanentError  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.storage import get_storage  # noqa: E402

from .work import split_call  # noqa: E402

__all__ = ["split_channels"]

# Dramatiq's limit for one message: the split and the segment cuts each have
# SPLIT_TIMEOUT of their own (enforced on FFmpeg), plus time for the transfers.
TRANSFER_ALLOWANCE = 1800
TIME_LIMIT = 2 * get_settings().split_timeout + TRANSFER_ALLOWANCE  # seconds

# Folders of splits whose worker was killed: no message can still be using one older than TIME_LIMIT.
janitor.remove_stale(get_settings().tmp_dir, "audio", TIME_LIMIT)


@actor(
    SPLIT_CHANNELS,
    max_retries=2,
    throws=(PermanentError,),
    time_limit=TIME_LIMIT * 1000,
)
def split_channels(call_id: str) -> None:
    """Split a call's recording per side, measure each side's speech, hand both sides to generation."""
    try:
        keys.validate_call_id(call_id)
    except keys.InvalidCallId as exc:
        raise PermanentError(str(exc)) from None
    call = progress.begin(call_id, Stage.AUDIO)
    if call is None:
        return
    if call.audio_finished_at is None:
        columns = split_call(call_id, get_storage(), get_settings())
        progress.finish(call_id, Stage.AUDIO, **columns)
    # Both sides, silent ones too: generation records them and runs the fan-in.
    for side in SIDES:
        send(GENERATE_SIDE, call_id=call_id, side=side)
    progress.advance(call_id, Stage.AUDIO, Stage.GENERATION)
