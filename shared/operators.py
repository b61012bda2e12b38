"""Named operator accounts (``OPERATORS``): who signed in to the console, so the history says who did what.

``OPERATORS`` is ``name:hash,name:hash``; each hash is made by
``callreel operator-hash`` (scrypt from the standard library, a random salt
per hash): ``scrypt$<log2 n>$<r>$<p>$<salt>$<key>``, salt and key in
URL-safe base64. The single ``CALLREEL_API_TOKEN`` keeps working beside them;
what it does is recorded as operator ``token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

__all__ = ["TOKEN_OPERATOR", "NAME_RE", "hash_password", "verify_password", "parse_operators", "OperatorsError"]

TOKEN_OPERATOR = "token"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LOG2_N, R, P = 15, 8, 1  # 32 MiB and ~50 ms a check: slow enough to guess, quick enough to sign in
KEY_BYTES = 32
# What a stored hash may ask for, so a bad OPERATORS entry cannot make a login eat the machine.
MAX_LOG2_N, MAX_R, MAX_P = 20, 16, 4


class OperatorsError(ValueError):
    """OPERATORS is malformed; the message says which entry and why (never the hash)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p + (1 << 20), dklen=KEY_BYTES)


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${log2_n}${R}${P}${_b64(salt)}${_b64(_scrypt(password, salt, log2_n, R, P))}"


def _parts(stored: str) -> tuple[int, int, int, bytes, bytes]:
    fields = stored.split("$")
    if len(fields) != 6 or fields[0] != "scrypt":
        raise OperatorsError("a hash must read scrypt$<log2 n>$<r>$<p>$<salt>$<key> (make one with `callreel operator-hash`)")
    try:
        log2_n, r, p = int(fields[1]), int(fields[2]), int(fields[3])
        salt, key = _unb64(fields[4]), _unb64(fields[5])
    except (ValueError, binascii.Error):
        raise OperatorsError("a hash has a field that is not a number or base64") from None
    if not (10 <= log2_n <= MAX_LOG2_N and 1 <= r <= MAX_R and 1 <= p <= MAX_P and len(salt) >= 8 and len(key) == KEY_BYTES):
        raise OperatorsError("a hash's scrypt parameters are out of range")
    return log2_n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    log2_n, r, p, salt, key = _parts(stored)
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p), key)


def parse_operators(value: str) -> dict[str, str]:
    """``name:hash,…`` as {name: hash}; OperatorsError names the entry that is wrong."""
    accounts: dict[str, str] = {}
    for number, entry in enumerate((e.strip() for e in value.split(",")), start=1):
        if not entry:
            continue
        name, sep, stored = entry.partition(":")
        name = name.strip().lower()
        if not sep or not NAME_RE.match(name):
            raise OperatorsError(f"OPERATORS entry {number}: write name:hash, the name 1–32 of a-z 0-9 _ - (got {name[:40]!r})")
        if name == TOKEN_OPERATOR:
            raise OperatorsError(f"OPERATORS entry {number}: the name {TOKEN_OPERATOR!r} is the API token's")
        if name in accounts:
            raise OperatorsError(f"OPERATORS entry {number}: {name!r} is named twice")
        try:
            _parts(stored.strip())
        except OperatorsError as exc:
            raise OperatorsError(f"OPERATORS entry {number} ({name}): {exc}") from None
        accounts[name] = stored.strip()
    return accounts
