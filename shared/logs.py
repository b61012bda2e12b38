"""Logging: one line per event, with the call id, stage and duration when there are any.

``LOG_FORMAT=json`` writes one JSON object per line for log collectors;
``text`` writes lines a person reads. Pass ``extra={"call_id": …, "stage": …,
"duration": …}`` to a log call to have them as fields.
"""

from __future__ import annotations

import json
import logging
import sys

from .settings import Settings, get_settings

__all__ = ["configure_logging", "JsonFormatter", "TextFormatter"]

FIELDS = ("call_id", "stage", "duration", "segment_id", "side")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({f: getattr(record, f) for f in FIELDS if getattr(record, f, None) is not None})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s")

    def format(self, record: logging.LogRecord) -> str:
        pairs = [f"{f}={getattr(record, f)}" for f in FIELDS if getattr(record, f, None) is not None]
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
