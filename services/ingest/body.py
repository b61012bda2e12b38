"""Reading a request body with a cap: a client never makes a worker read (or hold) more than it allows."""

from __future__ import annotations

import falcon

__all__ = ["read_capped"]


def read_capped(req: falcon.Request, limit: int, *, what: str = "The body") -> bytes:
    """The request's body, or 413 when it is (or says it is) larger than ``limit`` bytes."""
    too_large = f"{what} is larger than {limit} bytes."
    if req.content_length is not None and req.content_length > limit:
        raise falcon.HTTPContentTooLarge(description=too_large)
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        raise falcon.HTTPContentTooLarge(description=too_large)
    return raw
