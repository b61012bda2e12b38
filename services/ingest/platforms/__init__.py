"""The voice-agent platforms whose end-of-call webhooks make calls: one module each.

Each module declares a :class:`~.common.Platform` (its signature check and its
payload mapping); ``PLATFORMS`` is the registry the app routes from
(``/webhooks/<name>``) and the settings and docs are checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.settings import Settings

from . import elevenlabs, retell, vapi
from .common import Platform

__all__ = ["PLATFORMS", "Platform", "add_routes"]

PLATFORMS: dict[str, Platform] = {p.name: p for p in (vapi.PLATFORM, retell.PLATFORM, elevenlabs.PLATFORM)}


def add_routes(app: Any, settings: Settings, public: Callable[[Any], Any]) -> None:
    """``/webhooks/<name>`` for every platform, public: each checks its platform's signature instead."""
    from .webhook import PlatformWebhookResource, webhook_path

    for platform in PLATFORMS.values():
        app.add_route(webhook_path(platform), public(PlatformWebhookResource(platform, settings)))
