"""The audio service's worker: ``dramatiq services.audio.actors`` (queue ``audio``).

This module only declares the actor; the work is in :mod:`.stage`.
"""

from __future__ import annotations

from shared.runtime import boot

broker = boot("audio")

from shared.contracts import SPLIT_CHANNELS  # noqa: E402  (actors bind to the broker boot() set up)
from shared.skeleton import actor  # noqa: E402

from . import stage  # noqa: E402

__all__ = ["split_channels"]


@actor(SPLIT_CHANNELS, max_retries=2)
def split_channels(call_id: str) -> None:
    """Split a call's recording per side, measure each side's speech, hand both sides to generation."""
    stage.split_channels(call_id)
