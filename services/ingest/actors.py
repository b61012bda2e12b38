"""The ingest worker: ``dramatiq services.ingest.actors --queues ingest``.

This module only declares the actor and what happens when it gives up; the
work and its retry policy are in :mod:`.stage`.
"""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage

from shared.contracts import DOWNLOAD_RECORDING, on_give_up
from shared.runtime import boot
from shared.skeleton import actor

from . import stage

__all__ = ["download_recording"]

broker = boot("ingest")
if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
    # The actor reads its own message's options to count failed attempts.
    broker.add_middleware(CurrentMessage())


@actor(
    DOWNLOAD_RECORDING,
    retry_when=stage.retry_when,
    min_backoff=stage.RETRY_DELAYS_MS[0],
    max_backoff=stage.RETRY_DELAYS_MS[-1],
)
def download_recording(call_id: str) -> None:
    """Fetch the call's Twilio recording into ``recordings/{callId}.mp3`` and hand the call to the audio stage."""
    stage.download_recording(call_id)


on_give_up(DOWNLOAD_RECORDING)(stage.give_up)
