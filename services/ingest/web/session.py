"""Operator page logins: a signed, expiring session cookie and the CSRF token tied to it.

A person proves they hold ``CALLREEL_API_TOKEN`` once, on the login form; the
browser then carries a cookie ``<session id>.<expiry>.<signature>``, signed
with HMAC-SHA256 under a key derived from that token. Nothing is stored on
the server, so every gunicorn worker checks a cookie alone; changing the token
ends every session at once. Each form that changes something carries a CSRF
token derived from the session id, checked in constant time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import falcon

from shared.operators import TOKEN_OPERATOR, verify_password

__all__ = ["COOKIE_NAME", "LOGIN_PATH", "Session", "SessionSigner", "safe_next"]

COOKIE_NAME = "callreel_session"
LOGIN_PATH = "/ops/login"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# <session id>.<expiry>[.<operator>].<signature>: a session of the API token names no operator.
_COOKIE_RE = re.compile(r"^([A-Za-z0-9_-]{16,64})\.(\d{1,12})\.(?:([a-z0-9][a-z0-9_-]{0,31})\.)?([A-Za-z0-9_-]{43})$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Session:
    id: str
    expires: int  # Unix time
    operator: str = TOKEN_OPERATOR  # who signed in: a name of OPERATORS, or "token" (the API token)


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens."""

    def __init__(
        self, api_token: str, max_age: int, clock: Callable[[], float] = time.time, operators: dict[str, str] | None = None
    ) -> None:
        self._token = api_token.encode()
        self.operators = dict(operators or {})  # name → scrypt hash (shared/operators.py)
        # A key of its own: the cookie never carries anything the API token would verify.
        self._key = hmac.new(self._token, b"callreel operator session v1", hashlib.sha256).digest()
        self.max_age = max_age
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def token_matches(self, candidate: str) -> bool:
        """The login check: the API token itself, compared in constant time."""
        return self.enabled and hmac.compare_digest(candidate.strip().encode(), self._token)

    def operator_matches(self, name: str, password: str) -> str | None:
        """The operator ``name`` signs in as, when ``password`` is theirs; None otherwise (an unknown name costs a hash too)."""
        name = name.strip().lower()
        stored = self.operators.get(name)
        if not self.enabled:
            return None
        if stored is None:
            # As slow as a real check, so a wrong name cannot be told from a wrong password by the time taken.
            if self.operators:
                verify_password(password, next(iter(self.operators.values())))
            return None
        return name if verify_password(password, stored) else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, operator: str = TOKEN_OPERATOR) -> tuple[str, Session]:
        session = Session(secrets.token_urlsafe(24), int(self._clock()) + self.max_age, operator)
        payload = f"{session.id}.{session.expires}" if operator == TOKEN_OPERATOR else f"{session.id}.{session.expires}.{operator}"
        return f"{payload}.{self._sign(payload)}", session

    def verify(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged or expired."""
        if not self.enabled or not cookie:
            return None
        match = _COOKIE_RE.match(cookie)
        if not match:
            return None
        session_id, expires, operator, signature = match.groups()
        payload = f"{session_id}.{expires}" + (f".{operator}" if operator else "")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        if int(expires) <= self._clock():
            return None
        if operator and operator not in self.operators:  # an account taken out of OPERATORS ends its sessions
            return None
        return Session(session_id, int(expires), operator or TOKEN_OPERATOR)

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf:{session.id}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    # -- on requests and responses ---------------------------------------------

    def session_of(self, req: falcon.Request) -> Session | None:
        cookies = req.get_cookie_values(COOKIE_NAME) or []
        for value in cookies:
            session = self.verify(value)
            if session:
                return session
        return None

    def require(self, req: falcon.Request) -> Session:
        """The request's session; without one, a redirect to the login form that comes back here."""
        session = self.session_of(req)
        if session is None:
            # After a form POST (an expired session), come back to a page, not to the form's action.
            back = req.relative_uri if req.method == "GET" else None
            raise falcon.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(safe_next(back), safe='/')}")
        return session

    def set_cookie(self, resp: falcon.Response, value: str) -> None:
        resp.set_cookie(
            COOKIE_NAME, value, max_age=self.max_age, path="/", secure=True, http_only=True, same_site="Strict"
        )

    def clear_cookie(self, resp: falcon.Response) -> None:
        # The same flags as the cookie it replaces (Falcon's unset_cookie sets neither Secure nor HttpOnly).
        resp.set_cookie(
            COOKIE_NAME, "", expires=_EPOCH, max_age=0, path="/", secure=True, http_only=True, same_site="Strict"
        )


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of the operator page, never another site."""
    if (
        target
        and target.startswith("/ops/")
        and not target.startswith(("/ops/login", "/ops/logout"))
        and "\\" not in target
        and target.isprintable()
        and " " not in target
    ):
        return target
    return "/ops/overview"
