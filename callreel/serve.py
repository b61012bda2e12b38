"""``callreel serve``: the webhook app and all four workers in one process, for local development.

It runs against the configured database, broker and storage, so a developer
can point a real Twilio number at it through a tunnel. Production runs each
service on its own (see deploy/).
"""

from __future__ import annotations

import logging
import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from shared.settings import get_settings

from .embedded import running_pipeline

__all__ = ["serve"]

log = logging.getLogger("callreel.serve")


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def serve(port: int | None = None) -> int:
    settings = get_settings()
    port = port or settings.port
    with running_pipeline(settings):
        from services.ingest.app import app

        with make_server("0.0.0.0", port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler) as httpd:
            log.info("callreel serving on http://0.0.0.0:%d (webhook: /twilio/recording-status)", port)
            try:
                httpd.serve_forever()
            except KeyboardInterrupt:
                log.info("stopping")
    return 0
