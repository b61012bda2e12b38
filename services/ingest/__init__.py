"""The ingest service: Twilio's webhook, the submission path, the platforms' webhooks and the recording download.

``expire_pairs`` is what ``callreel sweep`` calls besides the stuck-call sweep.
"""

from __future__ import annotations

from shared.settings import Settings

__all__ = ["expire_pairs"]


def expire_pairs(settings: Settings) -> list[str]:
    """Settle the ElevenLabs webhooks whose pair never came (services/ingest/platforms/pairing.py); one line each."""
    from .platforms.pairing import expire

    return expire(settings, agent_channels={"elevenlabs": settings.elevenlabs_agent_channel})

