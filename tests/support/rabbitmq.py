"""A test's hands on its own RabbitMQ vhost: live queue counts, dropped connections, an outage, the dead-letter queue.

Counts come from a passive ``queue.declare`` (exact at the moment of asking),
not from the management API's statistics, which lag by several seconds.
Connections are closed with ``rabbitmqctl close_all_connections -p <vhost>``;
permissions are revoked and messages dead-lettered through the management API
(http://127.0.0.1:15672). Only this vhost is ever touched: other test sessions
share the server, which is never restarted.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
import pika

from .services import MANAGEMENT_CREDENTIALS, MANAGEMENT_URL

__all__ = ["RabbitAdmin", "QueueState"]

CREDENTIALS = MANAGEMENT_CREDENTIALS


@dataclass(frozen=True)
class QueueState:
    ready: int  # waiting to be delivered (unacknowledged messages are not counted)
    consumers: int


class RabbitAdmin:
    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.vhost = urlsplit(amqp_url).path.lstrip("/")
        self.api = httpx.Client(base_url=MANAGEMENT_URL, auth=CREDENTIALS, timeout=10)

    def close(self) -> None:
        self.api.close()

    def _v(self) -> str:
        return quote(self.vhost, safe="")

    # -- queues ---------------------------------------------------------------------------------

    def queue(self, name: str) -> QueueState:
        """Ready messages and consumers of ``name`` right now (0/0 if it does not exist)."""
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            try:
                ok = channel.queue_declare(name, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:
                return QueueState(0, 0)
            return QueueState(ok.message_count, ok.consumer_count)
        finally:
            if connection.is_open:
                connection.close()

    def purge(self, name: str) -> None:
        self.api.delete(f"/api/queues/{self._v()}/{quote(name, safe='')}/contents").raise_for_status()

    def dead_letter(self, name: str, count: int = 1) -> list[dict]:
        """Take ``count`` messages off ``name`` and reject them without requeue: RabbitMQ moves them to the DLQ."""
        response = self.api.post(
            f"/api/queues/{self._v()}/{quote(name, safe='')}/get",
            json={"count": count, "ackmode": "reject_requeue_false", "encoding": "auto"},
        )
        response.raise_for_status()
        return [json.loads(m["payload"]) for m in response.json()]

    # -- connections ----------------------------------------------------------------------------

    def drop_connections(self, reason: str = "e2e: connection dropped by the test") -> int:
        """Close every client connection to this vhost, as a network cut or a broker failover would.

        ``rabbitmqctl`` closes them at once; the management API lists a new
        connection only once its statistics are in (seconds later), so it could miss some.
        """
        done = subprocess.run(
            ["rabbitmqctl", "-q", "close_all_connections", "-p", self.vhost, reason],
            capture_output=True, text=True, timeout=60, check=True,
        )
        found = re.search(r"Closed (\d+) connection", done.stdout)
        return int(found.group(1)) if found else 0

    def revoke(self, user: str = "guest") -> None:
        """Refuse ``user`` on this vhost: reconnections fail until ``grant`` (the vhost is down for them)."""
        self.api.delete(f"/api/permissions/{self._v()}/{user}").raise_for_status()

    def grant(self, user: str = "guest") -> None:
        self.api.put(
            f"/api/permissions/{self._v()}/{user}", json={"configure": ".*", "write": ".*", "read": ".*"}
        ).raise_for_status()
