"""Sending a message from an HTTP request: a broker that is down is the client's 503, not our 500.

The webhook, the transcript upload and the console's retry all answer after
storing something; when the message cannot be sent, the row is kept and the
client is told to come back (Twilio and the host application retry on 503).
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from shared import contracts

__all__ = ["send_or_unavailable"]

log = logging.getLogger("callreel.ingest")


def send_or_unavailable(
    contract: contracts.Contract, *, call_id: str, title: str, description: str, retry_after: int, **kwargs: Any
) -> None:
    """Send ``contract`` for ``call_id``, or raise 503 with ``description`` (the reason is logged)."""
    try:
        contracts.send(contract, call_id=call_id, **kwargs)
    except Exception as exc:
        log.error("could not send %s: %s", contract.actor_name, exc, extra={"call_id": call_id})
        raise falcon.HTTPServiceUnavailable(title=title, description=description, retry_after=retry_after) from None
