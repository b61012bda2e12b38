"""The backlog per stage: what waits in each service's queue, so a person sees which service to scale.

With ``RABBITMQ_MANAGEMENT_URL`` set, the queue numbers per stage (ready, in
progress, delayed, dead, consumers: 0 means no worker is running) come from
RabbitMQ's management API, read by ``shared.queues`` (which the sweeper reads
too). The database's count of calls still at each stage is always given beside
them, and is all there is without the management API, or when it does not answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.calls import calls_per_stage
from shared.models import STAGES
from shared.queues import QueueReader, QueuesUnavailable
from shared.settings import Settings

__all__ = ["StageBacklog", "Backlog", "BacklogReader"]

log = logging.getLogger("callreel.ingest.backlog")


@dataclass
class StageBacklog:
    stage: str
    calls: int  # calls at this stage and not ended, from the database
    ready: int | None = None  # None: the queue numbers are unknown
    in_progress: int | None = None
    delayed: int | None = None
    dead: int | None = None
    consumers: int | None = None


@dataclass
class Backlog:
    stages: list[StageBacklog]
    source: str  # "rabbitmq" or "database"
    error: str | None = None  # why the queue numbers are missing, when configured

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "error": self.error, "stages": [vars(s) for s in self.stages]}


class BacklogReader:
    def __init__(self, settings: Settings) -> None:
        self.queues = QueueReader(settings)

    @property
    def uses_rabbitmq(self) -> bool:
        return self.queues.configured

    def read(self) -> Backlog:
        counts = calls_per_stage()
        stages = [StageBacklog(stage, counts.get(stage, 0)) for stage in STAGES]
        if not self.queues.configured:
            return Backlog(stages, "database")
        try:
            queues = self.queues.stages()
        except QueuesUnavailable as exc:
            log.warning("RabbitMQ management API unavailable: %s", exc)
            return Backlog(stages, "database", error=f"RabbitMQ management API unavailable ({exc})")
        for row in stages:
            state = queues[row.stage]
            row.ready, row.in_progress, row.delayed = state.ready, state.in_progress, state.delayed
            row.dead, row.consumers = state.dead, state.consumers
        return Backlog(stages, "rabbitmq")
