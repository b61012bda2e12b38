"""A credential kept in the database for a worker, sealed so the row never holds it in clear.

A submitted recording URL may need an ``Authorization`` header to fetch
(``POST /calls``' ``recording_auth``). The request that brings it answers at
once; the download runs later in the ingest worker, which reads the call's
row. So the header is kept on the row (``calls.recording_auth``), sealed with
Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``) under a key derived
from ``CALLREEL_API_TOKEN``, which the web service and the ingest worker both
have, and cleared once the recording is stored or the call failed. A database
dump, a log line or the status API never shows it.

A token rotated between the submission and the download makes the sealed
value unreadable: the download then fails with a reason that says so.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["SealError", "seal", "unseal"]

_CONTEXT = b"callreel:recording-auth:v1\0"


class SealError(ValueError):
    """Nothing to seal with (no CALLREEL_API_TOKEN), or a sealed value this key cannot open."""


def _fernet(secret: str) -> Fernet:
    if not secret:
        raise SealError("CALLREEL_API_TOKEN is not set: a recording credential cannot be kept sealed without it")
    key = hashlib.sha256(_CONTEXT + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(value: str, secret: str) -> str:
    """``value`` encrypted and authenticated under ``secret`` (the API token), as text for a column."""
    return _fernet(secret).encrypt(value.encode()).decode("ascii")


def unseal(sealed: str, secret: str) -> str:
    """The value :func:`seal` sealed; SealError when ``secret`` is not the one it was sealed with."""
    try:
        return _fernet(secret).decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SealError("the recording's credential cannot be unsealed: CALLREEL_API_TOKEN changed since it was submitted") from None
