"""``PUT /calls/{callId}/transcript``: the host application supplies a call's transcript, and the page reads it back.

The body is the file itself: JSON turns, WebVTT with voice tags or SRT whose
cues start with the speaker's name (``shared.transcript``). Its format comes
from ``?format=`` or the Content-Type (``application/json``, ``text/vtt``,
``application/x-subrip``); ``text/plain`` or none is sniffed.

A file is checked whole before anything is kept: every problem (malformed,
times outside the call, unknown speaker, over ``TRANSCRIPT_MAX_BYTES``) comes
back in one 400 ``{"errors": [...]}``, and neither the store nor the row
changes. The body is read with a cap, so an oversized upload costs at most
``TRANSCRIPT_MAX_BYTES`` + 1 bytes of memory.

The transcript may come before Twilio's recording webhook: the PUT then makes
the call's row (no recording yet), which the webhook claims by its CallSid
(``services.ingest.webhook.claim_call``), keeping the transcript columns. A
transcript that comes after the video is done is used by the next compose:
``?rerender=true`` asks for one at once (the compositor re-opens the ended call
and burns the captions in); a failed or partial call picks it up on its retry.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, MutableMapping
from typing import Any

import falcon

from shared import contracts, keys
from shared.callview import as_json, call_duration, call_view
from shared.models import Call, TranscriptStatus, VideoStatus, utcnow
from shared.settings import Settings
from shared.storage import ObjectNotFound, Storage
from shared.transcript import FORMATS, Transcript, TranscriptError, parse_transcript, speaker_names, to_json

from ..enqueue import send_or_unavailable
from .media import video_link

__all__ = ["TranscriptResource", "format_of", "read_capped", "aliases_of", "call_length", "read_stored_transcript", "CONTENT_FORMATS"]

log = logging.getLogger("callreel.ingest.transcript")

#: Content-Type → format; ``None`` means "look at the first characters".
CONTENT_FORMATS: dict[str, str | None] = {
    "application/json": "json",
    "text/vtt": "vtt",
    "application/x-subrip": "srt",
    "text/srt": "srt",
    "text/plain": None,
    "application/octet-stream": None,
    "": None,
}
#: Twilio reports a recording's length in whole seconds: until the audio stage has decoded
#: the real length, a turn may end up to this much past it without being refused.
WHOLE_SECOND_SLACK = 1.0
#: The page reads the stored JSON, which may be somewhat larger than the file sent (escapes, keys).
STORED_FACTOR = 4


class Refused(falcon.HTTPBadRequest):
    """A 400 whose body lists every problem: ``{"title", "description", "errors": [...]}``."""

    TITLE = "Transcript refused"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(title=self.TITLE, description="; ".join(problems))
        self.problems = problems

    def to_dict(self, obj_type: type = dict) -> MutableMapping[str, Any]:
        body: MutableMapping[str, Any] = super().to_dict(obj_type)
        body["errors"] = self.problems
        return body


def format_of(content_type: str | None, asked: str | None) -> str | None:
    """The format named by ``?format=``, else by the Content-Type; None to sniff. 400/415 for unknown ones."""
    if asked:
        if asked not in FORMATS:
            raise Refused([f"format must be one of {', '.join(FORMATS)}, not {asked[:20]!r}"])
        return asked
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in CONTENT_FORMATS:
        raise falcon.HTTPUnsupportedMediaType(
            description="Send the transcript as application/json, text/vtt, application/x-subrip or text/plain."
        )
    return CONTENT_FORMATS[media_type]


def read_capped(req: falcon.Request, max_bytes: int) -> bytes:
    """The body, refused (400) once it passes ``max_bytes``: never more than that plus one byte is read."""
    too_big = Refused([f"transcript is over the limit of {max_bytes} bytes (TRANSCRIPT_MAX_BYTES)"])
    if req.content_length is not None and req.content_length > max_bytes:
        raise too_big
    # A chunked upload has no Content-Length, which bounded_stream reads as an empty body; a server
    # that ends such an input itself (gunicorn says so with wsgi.input_terminated) can be read to its end.
    chunked = req.content_length is None and req.env.get("wsgi.input_terminated")
    stream = req.stream if chunked else req.bounded_stream
    parts: list[bytes] = []
    left = max_bytes + 1
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    if left <= 0:
        raise too_big
    return b"".join(parts)


def aliases_of(call: Call | None, settings: Settings) -> dict[str, str]:
    """Names a file may give each side: the deployment's labels, and this call's own names over them."""
    aliases = speaker_names(settings.caller_label, settings.callee_label)
    if call is not None:
        aliases.update(speaker_names(call.caller_name or "", call.callee_name or ""))
    return aliases


def call_length(call: Call | None) -> float | None:
    """The length turns are checked against: the decoded one, else Twilio's whole seconds (with slack), else none."""
    if call is None:
        return None
    if call.audio_duration is not None:
        return call.audio_duration
    duration = call_duration(call)
    return None if duration is None else duration + WHOLE_SECOND_SLACK


def _store(storage: Storage, call_id: str, transcript: Transcript) -> str:
    """Upload the transcript as JSON turns; the URL the row keeps (the store's own, as for videos)."""
    key = keys.transcript_key(call_id)
    fd, path = tempfile.mkstemp(prefix="transcript-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(to_json(transcript))
        storage.upload_file(path, key, "application/json")
    finally:
        os.unlink(path)
    return storage.object_url(key)


def _record(call_id: str, url: str) -> None:
    """Set the transcript columns, making the row if the recording webhook has not yet (one upsert, no race)."""
    now = utcnow()
    values = {
        Call.transcript_url: url,
        Call.transcript_status: TranscriptStatus.SUPPLIED,
        Call.transcript_error: None,
        Call.updated_at: now,
    }
    Call.insert({**values, Call.id: call_id, Call.created_at: now}).on_conflict(conflict_target=[Call.id], update=values).execute()


def _flag(req: falcon.Request, name: str) -> bool:
    value = (req.get_param(name) or "").strip().lower()
    if value not in ("", "0", "false", "no", "1", "true", "yes"):
        raise Refused([f"{name} must be true or false, not {value[:20]!r}"])
    return value in ("1", "true", "yes")


class TranscriptResource:
    """``PUT /calls/{callId}/transcript`` (bearer token, as the status API)."""

    def __init__(self, settings: Settings, storage: Callable[[], Storage]) -> None:
        self.max_bytes = settings.transcript_max_bytes
        self.settings = settings
        self._storage = storage

    def on_put(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        try:
            keys.validate_call_id(call_id)
        except keys.InvalidCallId as exc:
            raise falcon.HTTPBadRequest(title="Invalid call id", description=str(exc)) from None
        fmt = format_of(req.content_type, req.get_param("format"))
        rerender = _flag(req, "rerender")
        body = read_capped(req, self.max_bytes)
        call = Call.get_or_none(Call.id == call_id)
        try:
            transcript = parse_transcript(
                body, format=fmt, duration=call_length(call), max_bytes=self.max_bytes, aliases=aliases_of(call, self.settings)
            )
        except TranscriptError as exc:
            log.info("transcript refused: %s", "; ".join(exc.problems)[:500], extra={"call_id": call_id})
            raise Refused(exc.problems) from None
        storage = self._storage()
        # The object first, then the row: a row never points at a transcript that is not there.
        _record(call_id, _store(storage, call_id, transcript))
        log.info("transcript supplied: %d turns", len(transcript.turns), extra={"call_id": call_id})
        call = Call.get_by_id(call_id)
        view = as_json(call_view(call, video_link(storage)))
        resp.media = {**view, "rerender": _rerender(call) if rerender else False}
        resp.set_header("Cache-Control", "no-store")


def _rerender(call: Call) -> bool:
    """Compose a finished call again so its video gets the captions; False when its compose is still to come.

    A call still running reads the transcript when it is composed; a failed one
    when it is retried (``POST /calls/{callId}/retry``): neither needs a re-render.
    """
    if call.video_status not in (VideoStatus.COMPLETED, VideoStatus.PARTIAL):
        return False
    send_or_unavailable(
        contracts.COMPOSE,
        call_id=call.id,
        rerender=True,
        title="Broker unavailable",
        description="The transcript is stored, but the re-render could not be queued: send the PUT again shortly.",
        retry_after=5,
    )
    log.info("re-render sent for the new transcript", extra={"call_id": call.id})
    return True


def read_stored_transcript(storage: Storage, call: Call, max_bytes: int) -> Transcript | None:
    """The call's stored transcript, for the page; None when it has none.

    Raises ValueError saying why when it has one that cannot be read (missing,
    too large, not the JSON this service writes): the page shows that instead.
    """
    if not call.transcript_url or call.transcript_status not in (TranscriptStatus.SUPPLIED, TranscriptStatus.COMPLETED):
        return None
    key = keys.transcript_key(call.id)
    with tempfile.TemporaryDirectory(prefix="transcript-") as folder:
        path = os.path.join(folder, "transcript.json")
        try:
            if storage.size(key) > max_bytes * STORED_FACTOR:
                raise ValueError(f"{key} is too large to show")
            storage.download_file(key, path)
            with open(path, "rb") as source:
                return parse_transcript(source.read(), format="json")
        except ObjectNotFound:
            raise ValueError(f"{key} is missing from the store") from None
        except TranscriptError as exc:
            raise ValueError(f"{key} cannot be read: {exc.problems[0]}") from None
        except Exception as exc:  # the store did not answer (botocore's errors share no base): the page says so and goes on
            log.warning("cannot read the transcript: %s", exc, extra={"call_id": call.id})
            raise ValueError(f"{key} could not be fetched from the store") from None
