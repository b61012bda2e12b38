"""``POST /calls``: the host application submits a call, by recording URL (JSON) or by uploading the file (multipart).

Bearer token, as the rest of the status API (auth.py). Two bodies:

- ``application/json``: ``{"external_id", "recording_url", "recording_auth"?,
  "transcript"?, "caller_name"?, "callee_name"?, "video_layout"?, "captions"?,
  "agent_channel"?}``. The URL is fetched later by the ingest worker
  (https only, a host of ``RECORDING_URL_HOSTS``, never a private address
  unless an exact entry names it); ``recording_auth`` is the Authorization
  header for that fetch (``Basic …``/``Bearer …``), kept sealed.
- ``multipart/form-data``: a ``recording`` file part (streamed to a temp file
  under TMP_DIR, refused past ``RECORDING_MAX_BYTES``), the same fields as text
  parts, ``transcript`` as text or a file (JSON, WebVTT or SRT, as ``PUT
  /calls/{callId}/transcript`` takes it) and ``caller_avatar``/``callee_avatar``
  image parts (as ``PUT /calls/{callId}/avatars/{side}`` takes them).

Both go through services/ingest/submission.py (the platforms' webhooks do
too): every problem in one 400 ``{"errors": [...]}``, nothing stored; a new
call is 201, an ``external_id`` already submitted 200 with the same call. The
answer names the call and its status URL (``GET /calls/{callId}``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import falcon
from falcon.media.multipart import MultipartFormHandler, MultipartParseError

from shared.avatars import AVATAR_MAX_BYTES
from shared.models import SIDES, Source
from shared.settings import Settings
from shared.storage import Storage
from shared.transcript import TranscriptError, parse_transcript, speaker_names

from ..body import read_capped
from ..submission import Submission, SubmissionRefused, SubmitResult, submit
from . import transcripts
from .api import CallListResource

__all__ = ["CallsResource", "Refused", "JSON_FIELDS", "status_url"]

log = logging.getLogger("callreel.ingest.submit")

TEXT_FIELDS = ("external_id", "recording_url", "recording_auth", "caller_name", "callee_name", "video_layout", "captions", "agent_channel")
JSON_FIELDS = (*TEXT_FIELDS, "transcript")
AVATAR_PARTS = {f"{side}_avatar": side for side in SIDES}
CHUNK_BYTES = 64 * 1024
#: A text part is a name or an id: far below this.
TEXT_PART_MAX = 8 * 1024
MAX_PARTS = 16


class Refused(transcripts.Refused):
    """A 400 listing every problem of a submission, shaped as a refused transcript's."""

    TITLE = "Submission refused"


def status_url(req: falcon.Request, settings: Settings, call_id: str) -> str:
    """Where the call's status is read: PUBLIC_BASE_URL's host when set (behind a proxy), else this request's."""
    base = settings.public_base_url.rstrip("/") if settings.public_base_url else req.prefix
    return f"{base}/calls/{call_id}"


def _transcript_turns(value: Any, settings: Settings, names: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Turns from a JSON list (checked by submit), or from a file's text in any format PUT …/transcript reads."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, dict) and isinstance(value.get("turns"), list):
        return value["turns"]
    if not isinstance(value, str):
        raise Refused(["transcript must be a list of turns, or the text of a JSON, WebVTT or SRT file"])
    try:
        own = [name if isinstance(name, str) else "" for name in (names.get("caller_name"), names.get("callee_name"))]
        aliases = {**speaker_names(settings.caller_label, settings.callee_label), **speaker_names(*own)}
        transcript = parse_transcript(value.encode(), duration=None, max_bytes=settings.transcript_max_bytes, aliases=aliases)
    except TranscriptError as exc:
        raise Refused([f"transcript: {p}" for p in exc.problems]) from None
    return [{"speaker": t.speaker, "start": t.start, "end": t.end, "text": t.text} for t in transcript.turns]


class CallsResource(CallListResource):
    """``GET /calls``: the list (api.py); ``POST /calls``: submit a call."""

    def __init__(self, settings: Settings, storage: Callable[[], Storage]) -> None:
        self.settings = settings
        self._storage = storage

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        if media_type == "application/json":
            result = self._submit(self._from_json(req), req)
        elif media_type == "multipart/form-data":
            with self._from_form(req) as sub:
                result = self._submit(sub, req)
        else:
            raise falcon.HTTPUnsupportedMediaType(
                description="Send application/json with a recording_url, or multipart/form-data with a recording file."
            )
        url = status_url(req, self.settings, result.call_id)
        resp.status = falcon.HTTP_201 if result.created else falcon.HTTP_200
        resp.location = url
        resp.media = {
            "id": result.call_id,
            "created": result.created,
            "status": result.status,
            "queued": result.queued,
            "status_url": url,
        }
        resp.set_header("Cache-Control", "no-store")

    def _submit(self, sub: Submission, req: falcon.Request) -> SubmitResult:
        try:
            return submit(sub, settings=self.settings, storage=self._storage())
        except SubmissionRefused as exc:
            log.info("submission refused: %s", "; ".join(exc.problems)[:500])
            raise Refused(exc.problems) from None

    # -- JSON ------------------------------------------------------------------

    def _from_json(self, req: falcon.Request) -> Submission:
        raw = read_capped(req, self.settings.transcript_max_bytes + 64 * 1024)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise Refused([f"the body is not JSON: {exc}"]) from None
        if not isinstance(body, dict):
            raise Refused(["the body must be a JSON object"])
        unknown = sorted(set(body) - set(JSON_FIELDS))
        problems = [f"unknown field {name[:40]!r}" for name in unknown]
        if "recording_url" not in body:
            problems.append("recording_url is required (or upload the file as multipart/form-data)")
        if problems:
            raise Refused(problems)
        return self._submission(body, transcript=_transcript_turns(body.get("transcript"), self.settings, body))

    def _submission(self, fields: dict[str, Any], **extra: Any) -> Submission:
        if "external_id" not in fields:
            raise Refused(["external_id is required: your id for this call, so a retried request makes no second call"])
        # The values are unchecked JSON: submission.py checks each one's type and form.
        given: dict[str, Any] = {name: fields.get(name) for name in TEXT_FIELDS}
        return Submission(source=Source.API, **given, **extra)

    # -- multipart ---------------------------------------------------------------

    @contextmanager
    def _from_form(self, req: falcon.Request) -> Iterator[Submission]:
        """The form's submission, its recording spooled in a temp folder removed when the block ends."""
        limit = self.settings.recording_max_bytes
        too_large = falcon.HTTPContentTooLarge(description=f"The recording is larger than RECORDING_MAX_BYTES ({limit} bytes).")
        overhead = self.settings.transcript_max_bytes + 2 * AVATAR_MAX_BYTES + 1024 * 1024
        if req.content_length is not None and req.content_length > limit + overhead:
            raise too_large
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="submit-", dir=self.settings.tmp_dir))
        try:
            fields: dict[str, Any] = {}
            avatars: dict[str, bytes] = {}
            recording = None
            try:
                for part in self._parts(req):
                    name = part.name or ""
                    if name == "recording":
                        recording = folder / "recording"
                        self._spool(part.stream, recording, limit, too_large)
                    elif name in AVATAR_PARTS:
                        avatars[AVATAR_PARTS[name]] = self._bounded(part.stream, AVATAR_MAX_BYTES, f"{name} is larger than 10 MB")
                    elif name == "transcript":
                        data = self._bounded(part.stream, self.settings.transcript_max_bytes, "the transcript is over TRANSCRIPT_MAX_BYTES")
                        fields[name] = data.decode("utf-8", errors="replace")
                    elif name in TEXT_FIELDS:
                        fields[name] = self._bounded(part.stream, TEXT_PART_MAX, f"{name} is too long").decode("utf-8", errors="replace")
                    else:
                        raise Refused([f"unknown part {name[:40]!r}"])
            except MultipartParseError as exc:
                raise Refused([f"the form cannot be read: {exc.description or exc.title}"]) from None
            if recording is None:
                raise Refused(["the form has no recording part (or send JSON with a recording_url)"])
            if "recording_url" in fields:
                raise Refused(["give the recording as a URL or as a file, one of the two"])
            turns = _transcript_turns(fields.get("transcript"), self.settings, fields)
            yield self._submission(fields, recording_path=recording, avatars=avatars, transcript=turns)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _parts(self, req: falcon.Request):
        handler = MultipartFormHandler()
        handler.parse_options.max_body_part_count = MAX_PARTS
        # A chunked upload has no Content-Length; a server that ends such an input itself (gunicorn) can be read to its end.
        chunked = req.content_length is None and req.env.get("wsgi.input_terminated")
        stream = req.stream if chunked else req.bounded_stream
        return handler.deserialize(stream, req.content_type, req.content_length)

    @staticmethod
    def _spool(stream: Any, path: Path, limit: int, too_large: falcon.HTTPError) -> None:
        received = 0
        with path.open("wb") as out:
            while chunk := stream.read(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise too_large
                out.write(chunk)

    @staticmethod
    def _bounded(stream: Any, limit: int, message: str) -> bytes:
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise Refused([message])
        return data
