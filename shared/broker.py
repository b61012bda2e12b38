"""The Dramatiq broker: RabbitMQ in production, in-process for one machine and tests.

``setup_broker()`` is called by every service's ``actors`` module before it
declares its actors (Dramatiq binds actors to the global broker when they are
declared), and by anything that only sends.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import default_middleware

from . import contracts
from .db import DatabaseMiddleware
from .logs import CallLogContext
from .settings import Settings, get_settings

__all__ = ["setup_broker", "build_broker", "GiveUpMiddleware", "rabbitmq_url"]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_configured: dramatiq.Broker | None = None


class GiveUpMiddleware(dramatiq.Middleware):
    """When a message has failed for good, let its owner record why on the call.

    Runs after Retries has decided (``message.failed``), so the call is marked
    failed exactly when its message goes to the dead-letter queue, not on a
    retry, and a worker never ends a message without saying what happened.
    """

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None or not message.failed:
            return
        handler = contracts.give_up_handler(message.actor_name) or _fail_call_of
        try:
            handler(dict(message.kwargs), exception)
        except Exception:  # never let bookkeeping take the worker down
            log.exception("give-up handler of %s failed", message.actor_name)


def _fail_call_of(kwargs: dict[str, Any], exception: BaseException) -> None:
    from .progress import fail_call

    if "call_id" in kwargs:
        fail_call(kwargs["call_id"], str(exception) or exception.__class__.__name__)


#: For a process that enqueues while a client waits (the webhook: Twilio gives up after 15 s). Dramatiq
#: tries an enqueue on up to 6 fresh connections; with pika's own 3 attempts 2 s apart on each, a broker
#: that is down held a webhook for 24 s or more. One quick attempt per connection answers 503 at once
#: when the broker refuses, and within about 6 × 2 s when it does not answer at all.
FAIL_FAST = {"connection_attempts": "1", "socket_timeout": "2", "stack_timeout": "2"}


def rabbitmq_url(settings: Settings, *, fail_fast: bool = False) -> str:
    """BROKER_URL with the heartbeat and connection retries set (unless the URL sets its own)."""
    parts = urlsplit(settings.broker_url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("heartbeat", str(settings.broker_heartbeat))
    for name, value in (FAIL_FAST if fail_fast else {"connection_attempts": "3", "retry_delay": "2"}).items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def build_broker(settings: Settings, *, fail_fast: bool = False) -> dramatiq.Broker:
    # CallLogContext first: it gives Dramatiq's own lines about a message its call id (shared/logs.py).
    middleware = [CallLogContext(), DatabaseMiddleware(), GiveUpMiddleware()] + [m() for m in default_middleware]
    if settings.in_process_broker:
        broker: dramatiq.Broker = StubBroker(middleware=middleware)
        broker.emit_after("process_boot")
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        if settings.metrics_port:
            from .metrics import WorkerMetrics, metrics_dir

            middleware.append(WorkerMetrics(metrics_dir(settings.metrics_port, settings)))
        broker = RabbitmqBroker(
            url=rabbitmq_url(settings, fail_fast=fail_fast), confirm_delivery=settings.broker_confirm_delivery, middleware=middleware
        )
    for queue in contracts.QUEUES:
        broker.declare_queue(queue)
    return broker


def setup_broker(settings: Settings | None = None, *, force: bool = False, fail_fast: bool = False) -> dramatiq.Broker:
    """Build the configured broker once per process and make it Dramatiq's global one.

    ``fail_fast``: for a web process, whose enqueue must give up before its client does.
    """
    global _configured
    with _lock:
        if _configured is None or force:
            _configured = build_broker(settings or get_settings(), fail_fast=fail_fast)
            dramatiq.set_broker(_configured)
        return _configured
