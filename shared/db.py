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
from collections.abc import Iterator

import dramatiq
from peewee import Database, DatabaseProxy, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import connect as connect_url

from .settings import get_settings

__all__ = ["database", "init_database", "connection", "DatabaseMiddleware", "postgres_options"]

database = DatabaseProxy()
_init_lock = threading.Lock()
_initialised_url: str | None = None
_initialised_pooled = False
# A pooled connection idle this long is closed rather than reused.
POOL_STALE_SECONDS = 300

# WAL lets the in-process worker threads read while one writes; busy_timeout
# makes a writer wait for the lock instead of failing at once.
SQLITE_PRAGMAS = {"journal_mode": "wal", "busy_timeout": 15000, "foreign_keys": 1, "synchronous": "normal"}


def postgres_options() -> str:
    """Server settings every PostgreSQL connection starts with: the lock and statement timeouts.

    Without them a statement waits for a lock for ever: with the ``calls``
    table locked, the webhook hung past Twilio's 15 s (Twilio gives up and
    retries into the same wait) instead of answering 503. With them the wait
    ends in an OperationalError, which the web app answers 503 + Retry-After
    and a worker retries like any lost connection.
    """
    settings = get_settings()
    timeouts = {"lock_timeout": settings.db_lock_timeout, "statement_timeout": settings.db_statement_timeout}
    return " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in timeouts.items())


def _open(url: str, pooled: bool = False) -> Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            import os

            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    url = url.replace("postgres://", "postgresql://", 1)
    if pooled and url.startswith("postgresql://"):
        # peewee's pool checks a connection with a round trip before reusing it,
        # so one the server dropped (a restart) is replaced, never handed out.
        # No cap: it holds at most as many as were ever in use at once (one per thread).
        return connect_url(
            url.replace("postgresql://", "postgresql+pool://", 1),
            autoconnect=True, max_connections=None, stale_timeout=POOL_STALE_SECONDS, options=postgres_options(),
        )
    db = connect_url(url, autoconnect=True, options=postgres_options())
    if not isinstance(db, PostgresqlDatabase):
        raise ValueError(f"unsupported database URL {url!r}")
    return db


def init_database(url: str | None = None, *, force: bool = False, pooled: bool | None = None) -> Database:
    """Bind the models to ``url`` (default: the configured DATABASE_URL).

    ``pooled`` (PostgreSQL only): closing a connection returns it to this
    process's pool and the next unit of work reuses it. For the web process,
    where opening a connection (a new server process and its authentication)
    cost more than the webhook's own queries. Workers keep one connection per
    message: their session-scoped advisory locks (``shared.locks``) must end
    with the message. None keeps whatever was chosen before.
    """
    global _initialised_url, _initialised_pooled
    url = url or get_settings().effective_database_url
    with _init_lock:
        if force or _initialised_url != url or (pooled is not None and pooled != _initialised_pooled):
            if database.obj is not None and not database.is_closed():
                database.close()
            keep = _initialised_pooled if pooled is None and not force else bool(pooled)
            database.initialize(_open(url, keep))
            _initialised_url, _initialised_pooled = url, keep
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
