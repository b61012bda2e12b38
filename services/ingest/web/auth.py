"""Who may use a route: one middleware checks every request before its responder runs.

The ingest app is protected by default. Each resource says how it is reached
with an ``access`` attribute; one that says nothing needs the bearer token, so
a route added tomorrow without a thought is closed, not open:

- ``PUBLIC``: no credential (Twilio's webhook, ``/healthz``, the login form,
  the stylesheet, the redirects to the call list). Mark one with :func:`public`.
- ``TOKEN`` (the default): ``Authorization: Bearer <CALLREEL_API_TOKEN>`` (the status API,
  the host application's machine credential).
- ``SESSION``: the operator's session cookie (session.py); without one, a
  redirect to the login form that comes back here.
- ``SESSION_OR_TOKEN``: either (the local store's videos, played by the page
  or fetched with the token).

A request the middleware lets through carries its session, if any, in
``req.context.session``. Doing this once here, rather than at the top of each
responder, means no responder can forget it: ``tests/services/ingest/web/test_auth.py``
walks every route of the app and asks each one without credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, TypeVar

import falcon

from .session import SessionSigner
from .throttle import Throttle

__all__ = ["PUBLIC", "TOKEN", "SESSION", "SESSION_OR_TOKEN", "public", "TokenAuth", "Authentication"]

PUBLIC = "public"
TOKEN = "token"
SESSION = "session"
SESSION_OR_TOKEN = "session or token"

R = TypeVar("R")


def public(resource: R) -> R:
    """Mark a resource as open to anyone (said where the route is added, for all to see)."""
    resource.access = PUBLIC  # type: ignore[attr-defined]
    return resource


def too_many_failures(wait: int) -> falcon.HTTPTooManyRequests:
    return falcon.HTTPTooManyRequests(
        title="Too many wrong tokens", description=f"Too many wrong API tokens from this address: try again in {wait} s.", retry_after=wait
    )


def _peer(req: falcon.Request) -> str:
    return req.remote_addr


class TokenAuth:
    """``Authorization: Bearer <CALLREEL_API_TOKEN>``, compared in constant time; wrong ones throttled per address.

    The right token is checked first and always let through, so a client
    sharing an address with a guesser (everyone, behind a proxy) is never
    locked out; see throttle.py for why that leaks nothing worth having.
    """

    def __init__(self, token: str, throttle: Throttle, client: Callable[[falcon.Request], str] = _peer) -> None:
        self._token = token.encode()
        self.throttle = throttle
        self.client = client

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def check(self, req: falcon.Request) -> None:
        if not self._token:
            raise falcon.HTTPForbidden(title="API disabled", description="Set CALLREEL_API_TOKEN to use the status API.")
        scheme, _, credentials = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._token):
            return
        if scheme:  # a request with no token at all is a visitor, not a guess
            wait = self.throttle.count_failure(self.client(req))
            if wait is not None:
                raise too_many_failures(wait)
        raise falcon.HTTPUnauthorized(
            title="Authentication required",
            description="Send Authorization: Bearer <CALLREEL_API_TOKEN>.",
            challenges=['Bearer realm="callreel"'],
        )


class Authentication:
    """Falcon middleware: the credential each resource's ``access`` asks for, before it runs.

    Placed before the database middleware, so a request without a credential
    never takes a database connection (a wrong one takes one briefly, to be
    counted: throttle.py).
    """

    def __init__(self, token: TokenAuth, signer: SessionSigner) -> None:
        self.token = token
        self.signer = signer

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict) -> None:
        if resource is None:  # no route: Falcon answers 404
            return
        access = getattr(resource, "access", TOKEN)
        req.context.session = None
        if access == PUBLIC:
            return
        if access == SESSION:
            req.context.session = self.signer.require(req)
            return
        if access == SESSION_OR_TOKEN:
            req.context.session = self.signer.session_of(req)
            if req.context.session is not None:
                return
        self.token.check(req)  # TOKEN, and any value this module does not know: closed
