"""The audio service's worker: ``dramatiq services.audio.actors`` (queue ``audio``).

This module only declares the actor; the work is in :mod:`.stage`.
"""

from __future__ import annotations

from shared.contracts import SPLIT_CHANNELS
from shared.runtime import boot
from shared.skeleton import actor

from . import stage

__all__ = ["split_channels"]

# Before the actors are declared: they bind to the broker boot() makes Dramatiq's.
broker = boot("audio")


@actor(SPLIT_CHANNELS, max_retries=2)
def split_channels(call_id: str) -> None:
    """Split a call's recording per side, measure each side's speech, hand both sides to generation."""
    stage.split_channels(call_id)
