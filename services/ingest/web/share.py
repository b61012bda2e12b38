"""Share links: a public page that plays one call's final video, for people without the API token.

- ``POST /calls/{callId}/share`` (bearer token): ``{"url": PUBLIC_BASE_URL/v/{token}, "expires_at": ...}``,
  a link valid for SHARE_LINK_TTL seconds. 409 while the call has no final video.
- ``DELETE /calls/{callId}/share`` (bearer token): revokes every link of the call.
- ``GET /v/{token}`` (public): the page (video, poster, captions, Open Graph and Twitter card tags).
- ``GET /v/{token}/video.mp4``, ``/poster.jpg``, ``/captions.vtt`` (public): that call's files, nothing else.

The token is ``base64url(call id (16 bytes) ‖ expiry (8 bytes) ‖ HMAC-SHA256)``
where the HMAC covers the call id, the expiry and the call's ``share_nonce``.
The nonce is in the database, never in the link: clearing it (DELETE) revokes
every link made with it at once, and the next POST draws a new one. Its key is
derived from CALLREEL_API_TOKEN under a label of its own (no second secret to
provision; rotating the API token, what one does after a leak, revokes all
links too; the label keeps a share token from ever being a session cookie).

Every refusal (bad form, forged, expired, revoked, unknown call, no final
video, a file the call lacks) is the same 404 page, byte for byte: a link
that does not work says nothing about why. The token is not encrypted, so the
call id can be read from it; it grants nothing without the signature.

Only the call's own keys are ever read (``shared.keys``): the token chooses a
call, the route one of three fixed names. On S3 the video is a redirect to a
presigned URL (the browser streams and seeks it from S3); the poster and the
captions, small, are sent through this app, so crawlers fetching ``og:image``
and the captions track need no redirect or cross-origin access.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import falcon

from shared import keys
from shared.callview import call_duration, poster_key_in, video_key_in
from shared.models import Call, VideoStatus
from shared.settings import Settings
from shared.storage import LocalStorage, ObjectNotFound, Storage

from .api import find_call
from .auth import PUBLIC
from .media import send_file
from .templating import render

__all__ = ["SHARE_PREFIX", "ShareSigner", "ShareResource", "SharePage", "ShareFile", "not_found", "add_share_routes"]

log = logging.getLogger("callreel.ingest.share")

SHARE_PREFIX = "/v/"
KEY_LABEL = b"callreel share link v1"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{75}$")  # 56 bytes in unpadded base64url
MAC_BYTES = 32
SHARED = (VideoStatus.COMPLETED, VideoStatus.PARTIAL)
#: Poster and captions are read through this app; anything larger is not theirs.
SMALL_FILE_MAX = 5 * 1024 * 1024


class ShareSigner:
    """Makes and checks share tokens; the nonce comes from the call's row."""

    def __init__(self, api_token: str) -> None:
        self.enabled = bool(api_token)
        self._key = hmac.new(api_token.encode(), KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, call_id: str, nonce: str, expires: int) -> bytes:
        message = f"{call_id}|{expires}|{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def sign(self, call_id: str, nonce: str, expires: int) -> str:
        payload = bytes.fromhex(keys.validate_call_id(call_id)[2:]) + expires.to_bytes(8, "big")
        return base64.urlsafe_b64encode(payload + self._mac(call_id, nonce, expires)).rstrip(b"=").decode()

    @staticmethod
    def claims(token: str) -> tuple[str, int] | None:
        """The (call id, expiry) a token names, unchecked; None when it is not a token's shape."""
        if not TOKEN_RE.match(token):
            return None
        raw = base64.urlsafe_b64decode(token + "=")
        return "CA" + raw[:16].hex(), int.from_bytes(raw[16:24], "big")

    def valid(self, token: str, nonce: str | None, now: float | None = None) -> bool:
        """Signed by this key for this nonce, and not expired."""
        claims = self.claims(token)
        if not self.enabled or claims is None or not nonce:
            return False
        call_id, expires = claims
        if expires <= (time.time() if now is None else now):
            return False
        mac = base64.urlsafe_b64decode(token + "=")[24:]
        return hmac.compare_digest(mac, self._mac(call_id, nonce, expires))


def _final_video_key(call: Call) -> str | None:
    """The call's stitched video, when it has ended with one (a side video is never shared)."""
    key = keys.video_key(call.id)
    return key if call.video_status in SHARED and video_key_in(call.id, call.video_url) == key else None


def _captions_key(call: Call) -> str | None:
    key = keys.captions_key(call.id)
    return key if call.captions_url and call.captions_url.endswith("/" + key) else None


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ShareResource:
    """``POST|DELETE /calls/{callId}/share``: make a link, revoke them all (bearer token: auth.py's default)."""

    def __init__(self, signer: ShareSigner, settings: Settings) -> None:
        self.signer = signer
        self.ttl = settings.share_link_ttl
        self.base_url = settings.public_base_url.rstrip("/")

    def on_post(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        call = find_call(call_id)
        if _final_video_key(call) is None:
            raise falcon.HTTPConflict(title="No final video", description=f"Call {call.id} has no final video to share yet.")
        # Only a call without a nonce gets one: concurrent POSTs agree on the first, and earlier links stay valid.
        Call.update(share_nonce=secrets.token_urlsafe(24)).where((Call.id == call.id) & Call.share_nonce.is_null()).execute()
        nonce = Call.select(Call.share_nonce).where(Call.id == call.id).scalar()
        expires = int(time.time()) + self.ttl
        token = self.signer.sign(call.id, nonce, expires)
        log.info("share link made, valid until %s", _iso(expires), extra={"call_id": call.id})
        resp.status = falcon.HTTP_201
        resp.media = {"url": f"{self.base_url or req.prefix}{SHARE_PREFIX}{token}", "expires_at": _iso(expires)}
        resp.set_header("Cache-Control", "no-store")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        call = find_call(call_id)
        Call.update(share_nonce=None).where(Call.id == call.id).execute()
        log.info("share links revoked", extra={"call_id": call.id})
        resp.status = falcon.HTTP_204


class _Public:
    """What the share page and its files have in common: one check, one refusal."""

    access = PUBLIC

    def __init__(self, signer: ShareSigner, settings: Settings, storage: Callable[[], Storage]) -> None:
        self.signer = signer
        self.settings = settings
        self._storage = storage

    def shared_call(self, token: str) -> Call | None:
        """The call this token shares, if the token is valid now and the call has its final video."""
        claims = self.signer.claims(token)
        if claims is None:
            return None
        call = Call.get_or_none(Call.id == claims[0])
        if call is None or not self.signer.valid(token, call.share_nonce) or _final_video_key(call) is None:
            return None
        return call


def _sources(*urls: str | None) -> str:
    """``'self'`` and the origins of ``urls`` (a presigned URL's), for a CSP directive."""
    origins = {m.group(1) for url in urls if url and (m := re.match(r"^(https?://[^/?#]+)", url))}
    return " ".join(["'self'", *sorted(origins)])


def _page_headers(resp: falcon.Response, *, media: str = "'self'") -> None:
    resp.set_header(
        "Content-Security-Policy",
        f"default-src 'none'; style-src 'self'; img-src 'self'; media-src {media}; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    )
    resp.set_header("Cache-Control", "no-store")  # a revoked link must stop working at once
    resp.set_header("Referrer-Policy", "no-referrer")  # the link is the credential
    resp.set_header("X-Robots-Tag", "noindex, nofollow")
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("X-Frame-Options", "DENY")


def not_found(resp: falcon.Response) -> None:
    """The one answer to every link that does not work: the same page, whatever the reason."""
    resp.status = falcon.HTTP_404
    resp.content_type = "text/html; charset=utf-8"
    resp.text = render("share_gone")
    _page_headers(resp)


def _length(seconds: float | None) -> str:
    if seconds is None:
        return ""
    hours, rest = divmod(max(0, round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class SharePage(_Public):
    """``GET /v/{token}``: the call's video with its poster and captions, and the tags link previews read."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        call = self.shared_call(token)
        if call is None:
            return not_found(resp)
        storage = self._storage()
        base = f"{self.settings.public_base_url.rstrip('/') or req.prefix}{SHARE_PREFIX}{token}"
        caller = call.caller_name or self.settings.caller_label
        callee = call.callee_name or self.settings.callee_label
        when = f"{call.created_at.day} {call.created_at:%B %Y, %H:%M} UTC" if call.created_at else ""
        description = " · ".join(part for part in (when, _length(call_duration(call))) if part)
        poster = poster_key_in(call.id, call.poster_url) is not None
        captions = _captions_key(call) is not None
        # On S3 the video is a redirect to a presigned URL: the page may play media from the store's origin.
        store = None if isinstance(storage, LocalStorage) else storage.presigned_url(keys.video_key(call.id))
        resp.content_type = "text/html; charset=utf-8"
        resp.text = render(
            "share",
            title=f"Call: {caller} and {callee}",
            caller=caller,
            callee=callee,
            description=description or "A call",
            url=base,
            video=f"{base}/video.mp4",
            poster_attr=f"{base}/poster.jpg" if poster else "",
            image_tags=render("share_image", image=f"{base}/poster.jpg") if poster else "",
            card="summary_large_image" if poster else "summary",
            track=render("share_track", src=f"{base}/captions.vtt") if captions else "",
        )
        _page_headers(resp, media=_sources(store))

    on_head = on_get  # link-preview crawlers may look before they fetch


class ShareFile(_Public):
    """``GET /v/{token}/{name}``: the shared call's video, poster or captions; any other name is the 404."""


    def on_get(self, req: falcon.Request, resp: falcon.Response, token: str, name: str) -> None:
        call = self.shared_call(token)
        key = self._key(call, name) if call is not None else None
        if key is None:
            return not_found(resp)
        storage = self._storage()
        content_type = FILES[name][1]
        if isinstance(storage, LocalStorage):
            path = storage.path(key)
            if not path.is_file():
                return not_found(resp)
            send_file(req, resp, path, content_type)
        elif name == "video.mp4":
            resp.status = falcon.HTTP_302
            resp.location = storage.presigned_url(key)
        elif not self._send_small(resp, storage, key, content_type):
            return not_found(resp)
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("X-Robots-Tag", "noindex, nofollow")

    on_head = on_get

    @staticmethod
    def _key(call: Call, name: str) -> str | None:
        if name not in FILES:
            return None
        return FILES[name][0](call)

    @staticmethod
    def _send_small(resp: falcon.Response, storage: Storage, key: str, content_type: str) -> bool:
        try:
            if storage.size(key) > SMALL_FILE_MAX:
                return False
            with tempfile.TemporaryDirectory(prefix="callreel-share-") as folder:
                path = Path(folder) / "file"
                storage.download_file(key, path)
                resp.data = path.read_bytes()
        except ObjectNotFound:
            return False
        resp.content_type = content_type
        resp.set_header("X-Content-Type-Options", "nosniff")
        return True


# The three files a link reaches: the name in the URL, the call's own key for it, its type.
FILES: dict[str, tuple[Callable[[Call], str | None], str]] = {
    "video.mp4": (_final_video_key, "video/mp4"),
    "poster.jpg": (lambda call: keys.poster_key(call.id) if poster_key_in(call.id, call.poster_url) else None, "image/jpeg"),
    "captions.vtt": (_captions_key, "text/vtt; charset=utf-8"),
}


def add_share_routes(app: falcon.App, settings: Settings, storage: Callable[[], Storage]) -> None:
    signer = ShareSigner(settings.api_token)
    app.add_route("/calls/{call_id}/share", ShareResource(signer, settings))
    app.add_route(SHARE_PREFIX + "{token}", SharePage(signer, settings, storage))
    app.add_route(SHARE_PREFIX + "{token}/{name}", ShareFile(signer, settings, storage))
