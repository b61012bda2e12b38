"""Start-up shared by every service: settings checked, logging, database, broker."""

from __future__ import annotations

import dramatiq

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
    return setup_broker(settings)
