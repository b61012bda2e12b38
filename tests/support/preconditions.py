"""What the selected tests need from the machine, checked once before the first test runs.

A machine without RabbitMQ's management API used to give a dozen tracebacks
deep in fixtures; this says in one line per missing thing which service or
program is missing and the command that brings it. ``make test`` does all of
it (scripts/test-machine.sh), so that command is named too.

What a test needs comes from its markers (``postgres``, ``rabbitmq``,
``rabbitmq_management``, ``e2e``, ``browser``, ``promtool``), the fixtures it uses
(``pg_url``/``pg_db``, ``rabbitmq_url``) and the media it makes.
"""

from __future__ import annotations

import os
import shutil
import types
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import pytest

from tests.support import media, services

__all__ = ["needs", "missing", "CHROMIUM"]

CHROMIUM = "/usr/bin/chromium"
MAKE_TEST = "or `make test`, which sets up all the tests need"
# Test folders whose tests run FFmpeg on media they make or the pipeline makes.
FFMPEG_FOLDERS = ("services/audio", "services/compositor", "cli", "bench", "e2e")
TESTS = Path(__file__).resolve().parents[1]


def _pg_address() -> tuple[str, int]:
    parts = urlsplit(services.PG_ADMIN_DSN)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _uses_media(module: types.ModuleType | None) -> bool:
    """The test module imports tests/support/media.py or one of its functions: it makes media with FFmpeg."""
    if module is None:
        return False
    return any(value is media or getattr(value, "__module__", None) == media.__name__ for value in vars(module).values())


def _calls(item: pytest.Item, name: str) -> bool:
    code = getattr(getattr(item, "function", None), "__code__", None)
    return code is not None and name in code.co_names


def needs(item: pytest.Item) -> set[str]:
    """The things this test needs from the machine."""
    marks = {mark.name for mark in item.iter_markers()}
    fixtures = set(getattr(item, "fixturenames", ()))
    found = set()
    if "postgres" in marks or fixtures & {"pg_url", "pg_db"}:
        found.add("postgres")
    if "rabbitmq" in marks or "rabbitmq_url" in fixtures:
        found.add("rabbitmq")
    # The e2e harness reads queues and drops connections through the management API.
    if marks & {"rabbitmq_management", "e2e"}:
        found |= {"rabbitmq", "rabbitmq_management"}
    if "browser" in marks:
        found.add("chromium")
    if "promtool" in marks:
        found.add("promtool")
    folder = Path(str(item.path)).resolve().parent
    in_ffmpeg_folder = any(folder.is_relative_to(TESTS / sub) for sub in FFMPEG_FOLDERS)
    if in_ffmpeg_folder or "e2e" in marks or _uses_media(getattr(item, "module", None)):
        found.add("ffmpeg")
    if _calls(item, "speech_call") or _calls(item, "conversation"):  # tests/support/media.py's, bench/media.py's
        found.add("espeak-ng")
    return found


def _postgres() -> str | None:
    host, port = _pg_address()
    if services.port_open(host, port):
        return None
    version = next(iter(sorted(os.listdir("/etc/postgresql"))), "VERSION") if os.path.isdir("/etc/postgresql") else "VERSION"
    return f"PostgreSQL does not answer on {host}:{port}: start it with `pg_ctlcluster --skip-systemctl-redirect {version} main start` ({MAKE_TEST})"


def _rabbitmq() -> str | None:
    if not services.port_open(services.RABBIT_HOST, 5672):
        return f"RabbitMQ does not answer on {services.RABBIT_HOST}:5672: start it with `rabbitmq-server -detached` ({MAKE_TEST})"
    if shutil.which("rabbitmqctl") is None:  # the tests make their private vhosts with it
        return f"rabbitmqctl is not on PATH: the tests make their RabbitMQ vhosts with it (apt-get install rabbitmq-server; {MAKE_TEST})"
    return None


def _management() -> str | None:
    if services.port_open(services.RABBIT_HOST, 15672):
        return None
    return (
        f"RabbitMQ's management API does not answer on {services.RABBIT_HOST}:15672: "
        f"enable it with `rabbitmq-plugins enable rabbitmq_management` ({MAKE_TEST})"
    )


def _program(name: str, package: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if shutil.which(name):
            return None
        return f"{name} is not installed: `apt-get install {package}` ({MAKE_TEST})"

    return check


def _ffmpeg() -> str | None:
    return _program("ffmpeg", "ffmpeg")() or _program("ffprobe", "ffmpeg")()


def _chromium() -> str | None:
    return None if os.access(CHROMIUM, os.X_OK) else f"{CHROMIUM} is missing, the browser tests drive it: `apt-get install chromium` ({MAKE_TEST})"


# In this order: RabbitMQ's own line comes before its management API's.
CHECKS: dict[str, Callable[[], str | None]] = {
    "postgres": _postgres,
    "rabbitmq": _rabbitmq,
    "rabbitmq_management": _management,
    "ffmpeg": _ffmpeg,
    "espeak-ng": _program("espeak-ng", "espeak-ng"),
    "chromium": _chromium,
    "promtool": _program("promtool", "prometheus"),
}


def missing(items: Iterable[pytest.Item]) -> list[str]:
    """One line per thing the selected tests need and the machine lacks, with how many tests need it."""
    wanted: dict[str, int] = {}
    for item in items:
        for need in needs(item):
            wanted[need] = wanted.get(need, 0) + 1
    lines = []
    for name, check in CHECKS.items():
        if name in wanted and (problem := check()):
            if name == "rabbitmq_management" and "rabbitmq" in wanted and CHECKS["rabbitmq"]() is not None:
                continue  # the server itself is down: its line says what to do
            lines.append(f"{problem} [{wanted[name]} selected test(s)]")
    return lines
