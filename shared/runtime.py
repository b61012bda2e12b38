"""Start-up shared by every service: settings checked, logging, database, broker, the stage's leftovers cleared."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from . import janitor, pipeline
from .broker import setup_broker
from .db import init_database
from .logs import configure_logging
from .settings import get_settings

__all__ = ["boot"]


def boot(service: str) -> dramatiq.Broker:
    """Validate settings (failing with every problem at once) and set up the process."""
    settings = get_settings()
    configure_logging(settings)
    init_database()
    broker = setup_broker(settings)
    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        # shared.outage keeps an outage's window in the message's own options.
        broker.add_middleware(CurrentMessage())
    if service in pipeline.STAGES:
        # Folders of messages whose worker was killed: none can still be in use past the stage's time limit.
        janitor.clear_stage(service, settings)
    return broker
