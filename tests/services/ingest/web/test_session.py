"""Session cookies and CSRF tokens of the operator page: signed, expiring, tied to the API token."""

import pytest

from services.ingest.web.session import SessionSigner, safe_next

TOKEN = "operator-token-" + "y" * 20


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_cookie_it_issued_verifies_until_it_expires():
    clock = Clock()
    signer = SessionSigner(TOKEN, max_age=3600, clock=clock)
    cookie, session = signer.issue()
    assert signer.verify(cookie) == session and session.expires == clock.now + 3600
    clock.now += 3599
    assert signer.verify(cookie) == session
    clock.now += 1
    assert signer.verify(cookie) is None


def test_forged_or_altered_cookies_are_refused():
    signer = SessionSigner(TOKEN, max_age=3600)
    cookie, session = signer.issue()
    session_id, expires, signature = cookie.split(".")
    later = str(int(expires) + 10**6)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (
        f"{session_id}.{later}.{signature}",  # a longer life
        f"{session_id}.{expires}.{flipped}",
        f"{'x' * len(session_id)}.{expires}.{signature}",
        f"{session_id}.{expires}",
        "",
        "a.b.c",
        cookie + ".",
    ):
        assert signer.verify(forged) is None, forged
    # Signed under another token (the token was rotated): every session ends.
    assert SessionSigner("another-token-" + "z" * 20, max_age=3600).verify(cookie) is None
    # With no token configured, nothing verifies and no token matches.
    off = SessionSigner("", max_age=3600)
    assert off.verify(cookie) is None and not off.token_matches("")


def test_the_login_check_is_the_api_token_itself():
    signer = SessionSigner(TOKEN, max_age=60)
    assert signer.token_matches(TOKEN) and signer.token_matches(f"  {TOKEN}\n")
    assert not signer.token_matches(TOKEN[:-1]) and not signer.token_matches(TOKEN + "y") and not signer.token_matches("")


def test_csrf_tokens_belong_to_one_session():
    signer = SessionSigner(TOKEN, max_age=60)
    _, mine = signer.issue()
    _, theirs = signer.issue()
    token = signer.csrf_token(mine)
    assert signer.csrf_ok(mine, token)
    assert not signer.csrf_ok(theirs, token)
    assert not signer.csrf_ok(mine, None) and not signer.csrf_ok(mine, "") and not signer.csrf_ok(mine, token[:-1])
    # The cookie's own signature is not a CSRF token.
    cookie, session = signer.issue()
    assert not signer.csrf_ok(session, cookie.rsplit(".", 1)[1])


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/ops/calls?status=failed", "/ops/calls?status=failed"),
        ("/ops/calls/CA" + "1" * 32, "/ops/calls/CA" + "1" * 32),
        ("https://evil.example/ops/calls", "/ops/overview"),
        ("//evil.example/ops/", "/ops/overview"),
        ("/ops/../../etc", "/ops/../../etc"),  # a path on this site: harmless, the router 404s it
        ("/ops/\\evil.example", "/ops/overview"),
        ("/ops/calls\r\nSet-Cookie: x=1", "/ops/overview"),
        ("/ops/login?next=/ops/login", "/ops/overview"),
        ("/calls", "/ops/overview"),
        (None, "/ops/overview"),
    ],
)
def test_after_login_only_operator_pages_are_a_destination(target, expected):
    assert safe_next(target) == expected
