"""Falcon middleware: a database connection per request, taken late and always given back.

The web counterpart of ``shared.db.DatabaseMiddleware`` (which does the same
per Dramatiq message). The app's database is pooled (``init_database(pooled=True)``):
closing hands the connection back to the pool, and the next request reuses it
after a round trip that proves it alive, so a database restart costs no
poisoned thread and a request does not pay for a new server connection. peewee
keeps connections per thread, which matches gunicorn's threads.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from shared.db import database, init_database

__all__ = ["DatabaseConnectionMiddleware", "NoSniff", "database_unavailable"]

log = logging.getLogger("callreel.ingest")


class DatabaseConnectionMiddleware:
    """Connects before a resource runs and closes after the response.

    A resource that sets ``uses_database = False`` (the health check, which
    reports a broken database instead of failing on it) is left to connect on
    its own.
    """

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict) -> None:
        if resource is None or not getattr(resource, "uses_database", True):
            return
        if database.obj is None:
            init_database()
        database.connect(reuse_if_open=True)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        if database.obj is not None and not database.is_closed():
            database.close()


class NoSniff:
    """``X-Content-Type-Options: nosniff`` on every response, JSON and errors included.

    A browser must never guess that a JSON body (which may echo a caller's
    input) is HTML or script; the operator pages already say it, this says it
    for everything else.
    """

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")


def database_unavailable(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict) -> None:
    """An OperationalError (database down, connection lost) answers 503, so Twilio retries later."""
    log.error("database unavailable: %s", exc)
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", "5")
    resp.media = {"title": "Database unavailable", "description": "The database did not answer; try again shortly."}

