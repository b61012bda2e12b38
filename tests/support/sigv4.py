"""Check a presigned S3 URL as S3 and MinIO do: its signature over the canonical request, and its expiry.

moto's server (the tests' S3) checks neither, so a URL signed with the wrong
key or region, for another object, or long expired would still download
against it. :func:`verify` recomputes AWS Signature Version 4 for a query-string
signed ``GET`` (``UNSIGNED-PAYLOAD``, the ``host`` header signed), from the
URL's own parameters and the secret key, and raises :class:`BadPresignedURL`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["BadPresignedURL", "verify"]

ALGORITHM = "AWS4-HMAC-SHA256"


class BadPresignedURL(AssertionError):
    """What S3 would answer 403 to (SignatureDoesNotMatch, AccessDenied: Request has expired…)."""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def verify(url: str, *, access_key: str, secret_key: str, region: str, now: dt.datetime | None = None) -> dict[str, str]:
    """The URL's parameters, if S3 would accept the URL at ``now`` (UTC); otherwise BadPresignedURL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    missing = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} - set(params)
    if missing:
        raise BadPresignedURL(f"not a SigV4 presigned URL: no {sorted(missing)}")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise BadPresignedURL(f"algorithm {params['X-Amz-Algorithm']}")
    key_id, day, cred_region, service, terminator = params["X-Amz-Credential"].split("/")
    if (key_id, cred_region, service, terminator) != (access_key, region, "s3", "aws4_request"):
        raise BadPresignedURL(f"credential {params['X-Amz-Credential']} is not {access_key}'s for s3 in {region}")
    signed_at = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    if signed_at.strftime("%Y%m%d") != day:
        raise BadPresignedURL("the credential's day is not the signing day")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if now > signed_at + dt.timedelta(seconds=int(params["X-Amz-Expires"])):
        raise BadPresignedURL(f"Request has expired (signed {signed_at}, valid {params['X-Amz-Expires']} s)")
    if params["X-Amz-SignedHeaders"] != "host":
        raise BadPresignedURL(f"signed headers {params['X-Amz-SignedHeaders']}: a plain GET can only send host")
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in query if k != "X-Amz-Signature")
    )
    canonical_request = "\n".join(["GET", parts.path or "/", canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join([ALGORITHM, params["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        raise BadPresignedURL("SignatureDoesNotMatch: the URL was changed, or signed with another key")
    return params
