"""``POST /webhooks/<platform>``: one resource for every voice-agent platform, over the one submission path.

Order of checks, each with its own answer, the same for every platform:

1. the platform is turned on: its secret is set (404 naming the setting otherwise);
2. the body is at most the platform's cap (413), read raw: signatures are over bytes;
3. the request is signed by the platform (401 when no signature header came
   at all, 403 when one came and does not match, is malformed or too old);
   nothing is stored, nothing is parsed before this;
4. the body is JSON and, for the event that matters, the report it claims to
   be (400 naming what is missing);
5. an event that needs no action (another type, a call that never connected)
   is acknowledged with 200 and ignored;
6. the call is submitted (services/ingest/submission.py): stored first, then its
   download or audio stage queued, then the answer. A second delivery of the
   same call (the platforms retry) finds the call made by the first and
   answers 200 "duplicate". A submission refused (a recording host off the
   allow-list…) answers 422 with every reason: retrying cannot help.

The platform is the call's ``source``; its call id the ``external_id``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import falcon

from shared.settings import Settings

from ..body import read_capped
from ..submission import Submission, SubmissionRefused, SubmitResult, submit
from . import pairing
from .common import BadPayload, Ignored, Platform, PlatformCall

__all__ = ["PlatformWebhookResource", "webhook_path"]

log = logging.getLogger("callreel.ingest.platforms")


def webhook_path(platform: Platform) -> str:
    return f"/webhooks/{platform.name}"


class PlatformWebhookResource:
    """One platform's webhook. Public in the app's sense: the platform's signature is its credential."""

    def __init__(self, platform: Platform, settings: Settings) -> None:
        self.platform = platform
        self.settings = settings
        self.secret: str = getattr(settings, platform.secret_attr)
        self.agent_channel: str = getattr(settings, platform.channel_attr)
        self.api_key: str = getattr(settings, platform.api_key_attr) if platform.api_key_attr else ""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = self.platform.name
        if not self.secret:
            raise falcon.HTTPNotFound(
                title=f"The {name} webhook is off", description=f"Set {self.platform.secret_env} to receive {name}'s webhooks here."
            )
        body = read_capped(req, self.platform.max_body_bytes, what=f"A {name} webhook")
        headers = {h: req.get_header(h) for h in self.platform.signature_headers}
        problem = self.platform.verify(self.secret, headers, body, time.time())
        if problem is not None:
            log.warning("refused a %s webhook from %s: %s", name, req.remote_addr, problem)
            if not any(headers.values()):
                raise falcon.HTTPUnauthorized(title="Unsigned webhook", description=f"{problem} (see {self.platform.docs})")
            raise falcon.HTTPForbidden(title="Invalid signature", description=problem)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise falcon.HTTPBadRequest(title="Unreadable webhook", description=f"A {name} webhook body is JSON.") from None
        try:
            mapped = self.platform.parse(payload, self.agent_channel)
        except BadPayload as exc:
            log.warning("refused a malformed %s webhook: %s", name, exc)
            raise falcon.HTTPBadRequest(title=f"Invalid {name} webhook", description=str(exc)) from None
        if isinstance(mapped, Ignored):
            log.info("%s webhook ignored: %s", name, mapped.reason)
            resp.media = {"result": "ignored", "detail": mapped.reason}
            return
        self._submit(mapped, resp)

    def _pair(self, call: PlatformCall, resp: falcon.Response) -> None:
        """One of two webhooks that make a call together (ElevenLabs): kept until the other comes (pairing.py)."""
        name = self.platform.name
        try:
            result = pairing.receive(name, call, self.settings)
        except SubmissionRefused as exc:
            log.warning("%s webhook for %s refused: %s", name, call.external_id[:60], exc)
            raise falcon.HTTPUnprocessableEntity(title=f"{name} call refused", description="; ".join(exc.problems)) from None
        if isinstance(result, pairing.Waiting):
            log.info("%s call %s: its %s is kept until the other webhook comes", name, call.external_id[:60], result.has)
            detail = f"{result.has} kept; the call is made when its pair arrives"
            resp.media = {"external_id": call.external_id, "result": "waiting", "detail": detail}
            return
        self._answer(call, result, resp)

    def _answer(self, call: PlatformCall, result: SubmitResult, resp: falcon.Response) -> None:
        outcome = "queued" if result.created else "duplicate"
        log.info("%s call %s: %s", self.platform.name, call.external_id[:60], outcome, extra={"call_id": result.call_id})
        resp.media = {"call_id": result.call_id, "external_id": call.external_id, "result": outcome, "status": result.status}

    def _submit(self, call: PlatformCall, resp: falcon.Response) -> None:
        if call.half is not None:
            self._pair(call, resp)
            return
        name = self.platform.name
        url, auth = call.recording_url, call.recording_auth
        if url is not None and self.api_key and self.platform.api_recording_url is not None:
            url, auth = self.platform.api_recording_url(call.external_id), f"Bearer {self.api_key}"
        fields: dict[str, Any] = {
            "source": name,
            "external_id": call.external_id,
            "transcript": call.turns or None,
            "agent_channel": call.agent_channel,
        }
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.settings.tmp_dir, prefix=f"{name}-") as folder:
            if call.audio is not None:
                path = Path(folder) / f"recording.{call.audio_format}"
                path.write_bytes(call.audio)
                fields["recording_path"] = path
            else:
                fields.update(recording_url=url, recording_auth=auth)
            try:
                result = submit(Submission(**fields), settings=self.settings)
            except SubmissionRefused as exc:
                log.warning("%s webhook for %s refused: %s", name, call.external_id[:60], exc)
                raise falcon.HTTPUnprocessableEntity(title=f"{name} call refused", description="; ".join(exc.problems)) from None
        self._answer(call, result, resp)
