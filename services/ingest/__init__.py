"""The ingest service: Twilio's webhook, the submission path, the platforms' webhooks and the recording download.

``expire_pairs`` is what ``callreel sweep`` calls besides the stuck-call sweep;
``forget_banners`` lets the scale benchmark make every page pay for its banners.
"""

from __future__ import annotations

from shared.settings import Settings

__all__ = ["expire_pairs", "forget_banners"]


def expire_pairs(settings: Settings) -> list[str]:
    """Settle the ElevenLabs webhooks whose pair never came (services/ingest/platforms/pairing.py); one line each."""
    from .platforms.pairing import expire

    return expire(settings, agent_channels={"elevenlabs": settings.elevenlabs_agent_channel})


def forget_banners() -> None:
    """Drop the console banners' short cache, so the next page reads them afresh (the worst case)."""
    from .web import banners

    if banners._reader is not None:
        banners._reader.forget()
