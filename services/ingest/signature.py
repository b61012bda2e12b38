"""Twilio's request signature, checked with the twilio package's own validator.

Twilio signs the URL it called plus the POSTed fields. Behind a TLS-terminating
proxy (Railway) the URL the app sees is not that URL, so the signed URL is
rebuilt from ``PUBLIC_BASE_URL`` plus the request's path and query string.
``PUBLIC_BASE_URL`` is the scheme and host Twilio calls (plus any path prefix
the proxy strips before the request reaches this app).

Webhooks signed with a Twilio Webhooks SharedKey (they carry
``X-Twilio-Webhooks-Signature-Settings``, naming the algorithm) are checked
with ``TWILIO_WEBHOOK_SHARED_KEY`` when it is set; all others with the Auth Token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from shared.settings import Settings

__all__ = ["SignatureCheck", "FormParams", "SIGNATURE_HEADER", "SIGNATURE_SETTINGS_HEADER"]

log = logging.getLogger("callreel.ingest.signature")


class FormParams(dict):
    """POSTed fields, every value a list; ``getall`` is what RequestValidator asks of a multi-dict."""

    def getall(self, name: str) -> list[str]:
        return self[name]


class SignatureCheck:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.twilio_validate_signature
        self.base_url = settings.public_base_url.rstrip("/")
        self._auth_token = RequestValidator(settings.twilio_auth_token)
        self._shared_key = RequestValidator(settings.twilio_webhook_shared_key) if settings.twilio_webhook_shared_key else None

    def signed_url(self, path: str, query_string: str) -> str:
        return f"{self.base_url}{path}" + (f"?{query_string}" if query_string else "")

    def verify(self, path: str, query_string: str, params: FormParams, headers: Mapping[str, str | None]) -> bool:
        """True when the request carries a valid Twilio signature (always True when checking is off)."""
        if not self.enabled:
            return True
        signature = headers.get(SIGNATURE_HEADER)
        if not signature:
            return False
        settings_header = headers.get(SIGNATURE_SETTINGS_HEADER)
        validator = self._shared_key if settings_header and self._shared_key else self._auth_token
        url = self.signed_url(path, query_string)
        valid = validator.validate(url, params, signature, get_signature_algorithm(settings_header))
        if not valid and settings_header and self._shared_key is None:
            log.warning("webhook signed with a Twilio Webhooks SharedKey (%s); set TWILIO_WEBHOOK_SHARED_KEY", settings_header)
        return valid

