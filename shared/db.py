"""The database connection: one proxy every model binds to, opened per unit of work.

Workers and the web app open a connection when a message or request starts and
close it when it ends (see ``DatabaseMiddleware`` here and the Falcon
middleware in the ingest service), so a broken connection never outlives one
message and idle services hold none. peewee keeps connections per thread, so
this is safe with Dramatiq's and gunicorn's threads.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import dramatiq
from peewee import Database, DatabaseProxy, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import connect as connect_url

from .settings import get_settings

__all__ = ["database", "init_database", "connection", "DatabaseMiddleware"]

database = DatabaseProxy()
_init_lock = threading.Lock()
_initialised_url: str | None = None

# WAL lets the in-process worker threads read while one writes; busy_timeout
# makes a writer wait for the lock instead of failing at once.
SQLITE_PRAGMAS = {"journal_mode": "wal", "busy_timeout": 15000, "foreign_keys": 1, "synchronous": "normal"}


def _open(url: str) -> Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            import os

            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    db = connect_url(url.replace("postgres://", "postgresql://", 1), autoconnect=True)
    if not isinstance(db, PostgresqlDatabase):
        raise ValueError(f"unsupported database URL {url!r}")
    return db


def init_database(url: str | None = None, *, force: bool = False) -> Database:
    """Bind the models to ``url`` (default: the configured DATABASE_URL)."""
    global _initialised_url
    url = url or get_settings().effective_database_url
    with _init_lock:
        if force or _initialised_url != url:
            if database.obj is not None and not database.is_closed():
                database.close()
            database.initialize(_open(url))
            _initialised_url = url
    return database.obj


@contextlib.contextmanager
def connection() -> Iterator[Database]:
    """Open a connection for one unit of work, and close it after."""
    if database.obj is None:
        init_database()
    opened = database.connect(reuse_if_open=True)
    try:
        yield database.obj
    finally:
        if opened and not database.is_closed():
            database.close()


class DatabaseMiddleware(dramatiq.Middleware):
    """Opens the database connection for each message and closes it afterwards."""

    def before_process_message(self, broker, message):
        if database.obj is None:
            init_database()
        database.connect(reuse_if_open=True)

    def _close(self) -> None:
        if database.obj is not None and not database.is_closed():
            database.close()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self._close()

    def after_skip_message(self, broker, message):
        self._close()
