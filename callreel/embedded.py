"""The whole pipeline in one process: the same actors, an in-process broker and worker.

``callreel render`` and ``callreel serve`` run on this. Nothing here does a
stage's work: it imports the four services' actor modules (which declare their
actors on the broker the settings name) and runs a Dramatiq worker over all
four queues, so one machine behaves like the deployed services.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import dramatiq

from shared.broker import setup_broker
from shared.db import init_database
from shared.logs import configure_logging
from shared.migrations import run_migrations
from shared.settings import Settings, get_settings

__all__ = ["SERVICES", "load_services", "running_pipeline"]

log = logging.getLogger("callreel.embedded")

SERVICES = ("ingest", "audio", "generation", "compositor")


def load_services(names: tuple[str, ...] = SERVICES) -> list[str]:
    """Import each service's actors module; return the names that are installed."""
    loaded = []
    for name in names:
        try:
            importlib.import_module(f"services.{name}.actors")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"services.{name}"):
                log.warning("service %s is not available (%s)", name, exc)
                continue
            raise
        loaded.append(name)
    return loaded


@contextmanager
def running_pipeline(
    settings: Settings | None = None, *, threads: int | None = None, log_stream: IO[str] | None = None
) -> Iterator[dramatiq.Broker]:
    """Set up database, broker and services, and run one worker over every queue until the block ends.

    ``log_stream``: where the log goes (default stderr); ``callreel render`` on a terminal gives a file.
    """
    settings = settings or get_settings()
    configure_logging(settings, stream=log_stream)
    init_database()
    run_migrations()
    broker = setup_broker(settings)
    load_services()
    # Importing the actors boots each service, which puts the log back on stderr.
    configure_logging(settings, stream=log_stream)
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=threads or max(4, settings.worker_threads))
    worker.start()
    try:
        yield broker
    finally:
        # Let messages in flight finish: stopping mid-FFmpeg would leave a call half done.
        worker.stop(timeout=10_000)
        time.sleep(0)
