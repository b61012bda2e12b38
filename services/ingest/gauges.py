"""Gauges read when Prometheus scrapes ingest: each stage's queue and the calls past STAGE_DEADLINE.

The console's banners (web/banners.py) and deploy/prometheus/alerts.yml watch
the same four things; these gauges are what the alerts read:

- ``callreel_queue_messages{stage, state}``: ready, in_progress, delayed, dead (from
  RabbitMQ's management API, ``shared.queues``, which keeps an answer 5 s);
- ``callreel_queue_consumers{stage}``: 0 means that stage's workers are down;
- ``callreel_calls_over_deadline{stage}``: calls in one stage longer than STAGE_DEADLINE;
- ``callreel_queue_up``: 1 when the management API answered this scrape.

gunicorn's master serves them (deploy/gunicorn.conf.py passes this collector to
``shared.metrics.gunicorn_when_ready``). It never touches the workers' database
connections: it opens its own, once, and closes it after each scrape.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from shared.models import STAGES, utcnow
from shared.queues import QueueReader, QueuesUnavailable
from shared.settings import Settings

__all__ = ["IngestGauges"]

log = logging.getLogger("callreel.ingest.gauges")


class IngestGauges:
    """A prometheus_client collector (``collect`` yields the metric families)."""

    def __init__(self, settings: Settings, queues: QueueReader | None = None, db: Any = None) -> None:
        self.settings = settings
        self.queues = queues or QueueReader(settings)
        self._db = db

    def _database(self) -> Any:
        if self._db is None:
            from playhouse.db_url import connect

            url = self.settings.effective_database_url.replace("postgres://", "postgresql://", 1)
            self._db = connect(url)
        return self._db

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        messages = GaugeMetricFamily("callreel_queue_messages", "Messages in each stage's queue, per state.", labels=["stage", "state"])
        consumers = GaugeMetricFamily(
            "callreel_queue_consumers", "Consumers of each stage's queue (0: its workers are down).", labels=["stage"]
        )
        up = GaugeMetricFamily("callreel_queue_up", "1 when RabbitMQ's management API answered this scrape.")
        stuck = GaugeMetricFamily(
            "callreel_calls_over_deadline", "Calls in one stage for longer than STAGE_DEADLINE, per stage.", labels=["stage"]
        )
        try:
            states = self.queues.stages() if self.queues.configured else None
        except QueuesUnavailable as exc:
            log.warning("queue gauges not read: %s", exc)
            states = None
        up.add_metric([], 1.0 if states is not None else 0.0)
        for stage, state in (states or {}).items():
            for name in ("ready", "in_progress", "delayed", "dead"):
                messages.add_metric([stage, name], float(getattr(state, name)))
            consumers.add_metric([stage], float(state.consumers))
        yield from (messages, consumers, up)
        counts = self._stuck(utcnow() - dt.timedelta(seconds=self.settings.stage_deadline))
        if counts is not None:
            for stage in STAGES:
                stuck.add_metric([stage], float(counts.get(stage, 0)))
            yield stuck

    def _stuck(self, cutoff: dt.datetime) -> dict[str, int] | None:
        from services.ingest.web.stats import STUCK_SQL

        db = self._database()
        try:
            with db.connection_context():
                sql = STUCK_SQL if "postgres" in type(db).__name__.lower() else STUCK_SQL.replace("%s", "?")
                return {str(stage): int(n) for stage, n in db.execute_sql(sql, (cutoff,)).fetchall()}
        except Exception as exc:  # a scrape never fails on the database: the gauge is absent, not a false 0
            log.warning("calls over the deadline not counted: %s", exc)
            return None
