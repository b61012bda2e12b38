"""``GET /healthz``: can this instance take a webhook right now?

It can when the database takes a write on ``calls`` and the broker is
reachable: those are the two things a webhook needs. The database check takes
the lock the webhook's INSERT takes, under the same ``DB_LOCK_TIMEOUT`` and
``DB_STATEMENT_TIMEOUT`` (``shared.db``), so a locked or stalled table is
reported as the webhook would meet it; a bare ``SELECT 1`` said "ok" while
every webhook hung. The broker check reconnects once before it reports a
failure: an idle connection that missed its heartbeats is not an outage, and
the webhook's own send reconnects the same way. The answer is 200 or 503, with one line per
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
from peewee import PostgresqlDatabase

from shared.db import connection
from shared.models import Call

if TYPE_CHECKING:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

__all__ = ["HealthResource", "check_database", "check_broker"]

log = logging.getLogger("callreel.ingest.health")


def check_database() -> None:
    with connection() as db:
        if not isinstance(db, PostgresqlDatabase):
            db.execute_sql(f"SELECT 1 FROM {Call._meta.table_name} LIMIT 1").fetchall()
            return
        with db.atomic() as transaction:
            # ROW EXCLUSIVE is the lock an INSERT takes; nothing is written, the transaction is rolled back.
            db.execute_sql(f"LOCK TABLE {Call._meta.table_name} IN ROW EXCLUSIVE MODE")
            transaction.rollback()


def check_broker(broker: dramatiq.Broker) -> None:
    """Raise when the broker cannot be reached, even over a fresh connection."""
    if isinstance(broker, StubBroker):
        return
    # Every other broker shared.broker builds is a RabbitmqBroker.
    rabbitmq = cast("RabbitmqBroker", broker)
    try:
        _check_connection(rabbitmq)
    except Exception as exc:
        log.info("health check: the broker connection failed (%s); checking again over a new one", exc)
        _check_connection(rabbitmq)


def _check_connection(rabbitmq: RabbitmqBroker) -> None:
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
