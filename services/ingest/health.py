"""``GET /healthz``: can this instance take a webhook right now?

It can when the database answers and the broker is reachable: those are the
two things a webhook needs. The answer is 200 or 503, with one line per
dependency, so a platform health check (Railway) and a person read the same
thing. No authentication: it says nothing about any call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import dramatiq
import falcon
from dramatiq.brokers.stub import StubBroker

from shared.db import connection

if TYPE_CHECKING:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

__all__ = ["HealthResource", "check_database", "check_broker"]

log = logging.getLogger("callreel.ingest.health")


def check_database() -> None:
    with connection() as db:
        db.execute_sql("SELECT 1").fetchone()


def check_broker(broker: dramatiq.Broker) -> None:
    if isinstance(broker, StubBroker):
        return
    # Every other broker shared.broker builds is a RabbitmqBroker.
    rabbitmq = cast("RabbitmqBroker", broker)
    try:
        # The thread's own connection, as a send would use it; processing
        # pending events makes a dead connection raise instead of looking open.
        rabbitmq.connection.process_data_events(time_limit=0)
        if not rabbitmq.connection.is_open:
            raise ConnectionError("connection closed")
    except Exception:
        del rabbitmq.connection  # reconnect on the next use
        raise


class HealthResource:
    uses_database = False  # it reports a broken database instead of failing on it

    def __init__(self, broker: Callable[[], dramatiq.Broker]) -> None:
        self._broker = broker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"database": check_database, "broker": lambda: check_broker(self._broker())}
        report = {}
        for name, check in checks.items():
            try:
                check()
                report[name] = "ok"
            except Exception as exc:
                log.warning("health check: %s is unavailable: %s", name, exc)
                report[name] = f"unavailable: {exc.__class__.__name__}"
        healthy = all(value == "ok" for value in report.values())
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        resp.set_header("Cache-Control", "no-store")
        resp.media = {"status": "ok" if healthy else "unavailable", **report}

    on_head = on_get
