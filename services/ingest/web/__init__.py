"""The operator console of the ingest service: the status API, the operator page and the videos they show.

Everything a person (or the host application) reads about calls over HTTP
lives here; Twilio's webhook and the download stay one folder up. The entry
points, used by ``services.ingest.app``:

- :class:`Console`: builds the routes and the authentication middleware from the settings
- :func:`public`: marks a resource outside the console (webhook, health check) as open
- :func:`serialize_error`: errors as a page under ``/ops/``, JSON elsewhere
- :func:`forget_banners`: drop the banners' short cache (the scale benchmark's worst case)

Modules: ``api`` (JSON), ``pages``, ``fragments``, ``templating`` and
``templates/`` (HTML), ``static/`` (CSS, JS, icon), ``auth`` and ``session``
(who may ask), ``throttle`` (wrong tokens), ``listing`` (the call list's query),
``backlog`` (queues per stage), ``media`` (video URLs and the local store's videos),
``share`` (public share links of one call's video).
"""

from .auth import public
from .banners import forget_banners
from .console import Console
from .pages import serialize_error

__all__ = ["Console", "forget_banners", "public", "serialize_error"]
