"""Logging: one line per event, with the call id, stage and duration when there are any.

``LOG_FORMAT=json`` writes one JSON object per line for log collectors;
``text`` writes lines a person reads. Pass ``extra={"call_id": …, "stage": …,
"duration": …}`` to a log call to have them as fields; inside
``with log_context(call_id=…, stage=…)`` (every stage's message runs in one,
``shared.skeleton``) each line carries them without being told.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

import dramatiq

from .settings import Settings, get_settings

__all__ = ["configure_logging", "log_context", "JsonFormatter", "TextFormatter", "gunicorn_logconfig", "CallLogContext", "call_id_in"]

FIELDS = ("call_id", "stage", "duration", "segment_id", "side")

# Per thread (and task): each Dramatiq worker thread runs one message at a time.
# The default is read-only: each log_context sets a new mapping, none is changed in place.
_context: ContextVar[Mapping[str, Any]] = ContextVar("callreel_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Give every log line written inside the block these fields (a line's own ``extra`` wins)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields, each from its ``extra`` or else from the context it was logged in."""
    context, found = _context.get(), {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = context.get(name)
        if value is not None:
            found[name] = value
    return found


# A Twilio CallSid in a URL path: /calls/CA…, /ops/calls/CA…/retry.
_CALL_IN_PATH = re.compile(r"/(CA[0-9a-fA-F]{32})(?:/|$)")


def call_id_in(path: str) -> str | None:
    """The call id a request path names, if it names one."""
    found = _CALL_IN_PATH.search(path or "")
    return found.group(1) if found else None


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """gunicorn's access line as fields (its record's args are the request's atoms), with the call its URL names."""
    atoms = record.args if isinstance(record.args, Mapping) else {}
    fields = {"method": atoms.get("m"), "path": atoms.get("U"), "status": atoms.get("s"), "duration_ms": atoms.get("M")}
    call = call_id_in(str(atoms.get("U") or ""))
    if call:
        fields["call_id"] = call
    return {k: v for k, v in fields.items() if v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "gunicorn.access":
            entry.update(_access_fields(record))
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s")

    def format(self, record: logging.LogRecord) -> str:
        pairs = [f"{f}={value}" for f, value in _fields(record).items()]
        record.context = (" [" + " ".join(pairs) + "]") if pairs else ""
        return super().format(record)


def configure_logging(settings: Settings | None = None, stream=None) -> None:
    """Install the configured formatter on the root logger (idempotent)."""
    settings = settings or get_settings()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler._callreel = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace plain stream handlers (ours from an earlier call, the one the
    # ``dramatiq`` command installs) so each event is written once; keep
    # special-purpose handlers such as pytest's log capture.
    root.handlers = [h for h in root.handlers if type(h) is not logging.StreamHandler] + [handler]
    root.setLevel(settings.log_level)
    for noisy in ("pika", "botocore", "boto3", "s3transfer", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict`` for LOG_FORMAT=json: its error and access logs through :class:`JsonFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shared.logs.JsonFormatter"}},
        "handlers": {
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "root": {"level": level, "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["error_console"], "propagate": False, "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False, "qualname": "gunicorn.access"},
        },
    }


class CallLogContext(dramatiq.Middleware):
    """Dramatiq's own lines about a message (its failure, its retry) carry the message's call id.

    ``shared.skeleton`` gives the actor's own lines their call id; the worker logs a
    failure and the Retries middleware a retry after the actor returned, outside that
    block. ``shared.broker`` puts this middleware first, so it sets the context before
    any other middleware runs and, hooks after a message running in reverse order,
    resets it after all of them.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, Any] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        call_id = message.kwargs.get("call_id") if isinstance(message.kwargs, dict) else None
        if isinstance(call_id, str):
            self._tokens[message.message_id] = _context.set({**_context.get(), "call_id": call_id})

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None) -> None:
        token = self._tokens.pop(message.message_id, None)
        if token is not None:
            _context.reset(token)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.after_process_message(broker, message)
