"""The client's address as the trusted proxy saw it, for counting wrong credentials per client.

Behind Railway's proxy every request comes from the proxy's own address, so
counting by ``remote_addr`` put every client (the host application, each
operator, a guesser) in one bucket. Each proxy appends the address it received
the request from to ``X-Forwarded-For``; with ``TRUSTED_PROXY_HOPS`` proxies
in front of the app, the entry that many places from the right is the one the
outermost trusted proxy wrote. Entries further left were written by the
client and are not believed. With 0 hops (no proxy) the header is ignored, so
a client cannot pick its own address.
"""

from __future__ import annotations

import ipaddress

import falcon

__all__ = ["ClientAddress"]


class ClientAddress:
    def __init__(self, trusted_hops: int) -> None:
        self.trusted_hops = trusted_hops

    def __call__(self, req: falcon.Request) -> str:
        if self.trusted_hops <= 0:
            return req.remote_addr
        forwarded = [part.strip() for part in (req.get_header("X-Forwarded-For") or "").split(",") if part.strip()]
        if len(forwarded) < self.trusted_hops:
            return req.remote_addr  # not through every trusted proxy: the peer is all we know
        candidate = forwarded[-self.trusted_hops]
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return req.remote_addr
