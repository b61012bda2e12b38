"""The operator console's routes and the one authentication they share, wired from the settings.

``services.ingest.app`` builds a :class:`Console`, puts its
:attr:`~Console.authentication` among the app's middleware and calls
:meth:`~Console.add_routes`. Wrong tokens are counted per client address in
two buckets, the API's (the host application's machine token) and the login
form's (people), so neither can lock the other out; both counts are in the
database, shared by every worker (web/throttle.py).
"""

from __future__ import annotations

from collections.abc import Callable

import falcon

from shared.operators import parse_operators
from shared.settings import Settings
from shared.storage import Storage

from .address import ClientAddress
from .api import AvatarResource, BacklogResource, CallResource, RetryResource
from .auth import Authentication, TokenAuth
from .backlog import BacklogReader
from .banners import BannerReader, install
from .events import EventsResource
from .media import MEDIA_PREFIX, MediaResource
from .overview import OVERVIEW_PATH, OverviewPage
from .pages import add_operator_routes
from .session import SessionSigner
from .share import add_share_routes
from .submit import CallsResource
from .throttle import API_BUCKET, LOGIN_BUCKET, SharedFailureThrottle
from .transcripts import TranscriptResource

__all__ = ["Console"]


class Console:
    """The status API (bearer token), the operator page (session cookie), the local store's videos and share links."""

    def __init__(self, settings: Settings, storage: Callable[[], Storage]) -> None:
        self._storage = storage
        self.settings = settings
        limit, window = settings.auth_max_failures, settings.auth_failure_window
        self.client = ClientAddress(settings.trusted_proxy_hops)
        self.api_throttle = SharedFailureThrottle(API_BUCKET, limit, window)
        self.login_throttle = SharedFailureThrottle(LOGIN_BUCKET, limit, window)
        self.signer = SessionSigner(
            settings.api_token, settings.operator_session_max_age, operators=parse_operators(settings.operators)
        )
        self.backlog = BacklogReader(settings)
        self.banners = BannerReader(settings, self.backlog.queues)
        install(self.banners)
        self.authentication = Authentication(TokenAuth(settings.api_token, self.api_throttle, self.client), self.signer)

    def add_routes(self, app: falcon.App) -> None:
        app.add_route("/calls", CallsResource(self.settings, self._storage))
        app.add_route("/calls/{call_id}", CallResource(self._storage))
        app.add_route("/calls/{call_id}/retry", RetryResource())
        app.add_route("/calls/{call_id}/avatars/{side}", AvatarResource(self._storage))
        app.add_route("/calls/{call_id}/transcript", TranscriptResource(self.settings, self._storage))
        app.add_route("/calls/{call_id}/events", EventsResource())
        app.add_route("/backlog", BacklogResource(self.backlog))
        app.add_route(OVERVIEW_PATH, OverviewPage(self.signer, self.settings))
        add_operator_routes(app, self.signer, self._storage, self.backlog, self.login_throttle, self.client, self.settings)
        app.add_route(MEDIA_PREFIX + "{key:path}", MediaResource(self._storage))
        add_share_routes(app, self.settings, self._storage)
