"""Which channel of a call's recording is the caller's (the AI agent's): the call's own, else CALLER_CHANNEL.

A submitted call may say it (``agent_channel`` in POST /calls or a
platform's payload: ``calls.caller_channel``). The audio stage's split and
the compositor's mix both read the channel from the settings; a call that
carries its own is given settings that say it, so neither can read the
deployment's by mistake.
"""

from __future__ import annotations

import dataclasses

from .models import Call
from .settings import Settings

__all__ = ["CHANNELS", "with_call_channel"]

CHANNELS = ("left", "right")


def with_call_channel(call: Call | None, settings: Settings) -> Settings:
    """``settings`` with CALLER_CHANNEL as the call says (``calls.caller_channel``); as they are when it says nothing."""
    own = getattr(call, "caller_channel", None) if call is not None else None
    if own in CHANNELS and own != settings.caller_channel:
        return dataclasses.replace(settings, caller_channel=own)
    return settings
