"""The ingest web service: Twilio's webhook, the status API and the health check.

gunicorn serves ``services.ingest.app:app`` (see ``deploy/gunicorn.conf.py``);
tests build their own with ``create_app()``. ``app`` is made on first access,
not at import, so importing this module never reads settings or connects.

Routes:

- ``POST /twilio/recording-status`` — Twilio's recording status callback (webhook.py)
- ``GET /healthz`` — database and broker reachable (health.py)
- ``POST /webhooks/{vapi,retell,elevenlabs}`` — the voice-agent platforms'
  end-of-call webhooks, each checked with its platform's signature (platforms/)
- the operator console (``web/``): ``GET /calls``, ``GET /calls/{callId}``,
  ``POST /calls/{callId}/retry``, ``GET /backlog`` — the status API, bearer
  token (web/api.py); ``/ops/…`` — the operator page, a session cookie from the
  same token (web/pages.py); ``GET /media/{key}`` — videos of a local-folder
  store, for the page or the token (web/media.py)

Every route needs a credential unless it is marked public (web/auth.py): here,
the webhooks and the health check; in the console, the login form and its assets.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
import falcon
import peewee

from shared.broker import setup_broker
from shared.db import init_database
from shared.logs import configure_logging
from shared.metrics import RequestMetrics
from shared.settings import Settings, SettingsError, get_settings
from shared.storage import get_storage

from . import platforms
from .health import HealthResource
from .middleware import DatabaseConnectionMiddleware, NoSniff, database_unavailable
from .web import Console, forget_banners, public, serialize_error
from .webhook import RecordingStatusResource

__all__ = ["create_app", "check_settings", "forget_banners", "RECORDING_STATUS_PATH"]

log = logging.getLogger("callreel.ingest")

RECORDING_STATUS_PATH = "/twilio/recording-status"

UNSIGNED_WARNING = (
    "TWILIO_VALIDATE_SIGNATURE is off: webhook signatures are NOT checked. Anyone who can reach "
    "%s can create calls here. Turn it back on before this service faces the internet."
)


def check_settings(settings: Settings) -> None:
    """Fail at start, with every missing variable at once, rather than on the first webhook."""
    purpose = "by the ingest service"
    needed = ["TWILIO_ACCOUNT_SID"]
    if settings.twilio_validate_signature:
        needed += ["TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"]
    settings.require(needed, f"{purpose} (to check Twilio's webhooks)")
    if not settings.twilio_recording_hosts:
        raise SettingsError([f"TWILIO_RECORDING_HOSTS must name at least one host {purpose}"])


def create_app(settings: Settings | None = None) -> falcon.App:
    settings = settings or get_settings()
    check_settings(settings)
    configure_logging(settings)
    # Connections are kept between requests, one per gunicorn thread (see shared.db).
    init_database(pooled=True)
    setup_broker(settings, fail_fast=True)  # a webhook answers 503 before Twilio's 15 s, broker or not
    if not settings.twilio_validate_signature:
        log.warning("!" * 78)
        log.warning(UNSIGNED_WARNING, RECORDING_STATUS_PATH)
        log.warning("!" * 78)

    console = Console(settings, get_storage)
    app = falcon.App(middleware=(RequestMetrics(), NoSniff(), console.authentication, DatabaseConnectionMiddleware()))
    for error in (peewee.OperationalError, peewee.InterfaceError):
        app.add_error_handler(error, database_unavailable)
    app.set_error_serializer(serialize_error)
    app.add_route(RECORDING_STATUS_PATH, public(RecordingStatusResource(settings)))  # Twilio's signature instead
    app.add_route("/healthz", public(HealthResource(dramatiq.get_broker)))
    platforms.add_routes(app, settings, public)  # /webhooks/vapi, /webhooks/retell, /webhooks/elevenlabs: each platform's signature
    console.add_routes(app)
    log.info("ingest app ready", extra={"stage": "ingest"})
    return app


_app: falcon.App | None = None
_app_lock = threading.Lock()


def __getattr__(name: str) -> falcon.App:
    # ``services.ingest.app:app`` for gunicorn, built once per worker process on first access.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _app_lock:
        if _app is None:
            _app = create_app()
        return _app
