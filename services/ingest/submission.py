"""The one way in for a call that is not Twilio's webhook: ``POST /calls``, ``callreel submit`` and the platforms' webhooks.

Each front door (web/submit.py for the API, one module per voice-agent
platform) turns its request into a :class:`Submission` and calls
:func:`submit`, which:

1. checks every field and raises :class:`SubmissionRefused` listing every
   problem (nothing is stored then);
2. returns the existing call when ``(source, external_id)`` is already known
   (``created=False``): a submission delivered twice makes one call;
3. stores what it was given (an uploaded recording under
   ``recordings/{callId}.{ext}`` by its real format, the transcript, avatar
   images), then inserts the row (``INSERT … ON CONFLICT DO NOTHING`` on the
   unique ``(source, external_id)``: the database decides who won a race, and
   the loser's objects are deleted);
4. enqueues: the ingest stage's download for a URL (fetched by the worker
   under ``RECORDING_URL_HOSTS``' rules, its credential kept sealed on the row
   until then: shared/sealing.py), or the audio stage for a file already
   stored. A broker that is down does not lose the call: the row is stored as
   pending and the sweeper starts it (``queued=False`` says so).

Nothing slow happens here besides storing an upload the caller already holds
on local disk: platforms wait ~20 s at most, so a URL is never fetched in the
request.

A Submission's recording is ``recording_url`` (with ``recording_auth``, an
Authorization header value such as ``Bearer …`` or ``Basic …``) or
``recording_path`` (a local file, e.g. an upload spooled by the web layer or
a platform's inline audio written to a temp file); never both. The audio stage
validates the recording as it does Twilio's (stereo required, a clear reason
otherwise); ``agent_channel`` says which channel holds the AI agent, shown as
the caller (None: ``CALLER_CHANNEL``).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from peewee import IntegrityError

from shared import contracts, keys, pipeline
from shared.avatars import AvatarError, store_avatar
from shared.db import database
from shared.errors import PermanentError
from shared.models import SIDES, Call, Source, Stage, TranscriptStatus, VideoStatus, utcnow
from shared.presentation import check_presentation
from shared.sealing import SealError, seal
from shared.settings import Settings, get_settings
from shared.sniff import recording_format
from shared.storage import Storage, get_storage
from shared.transcript import TranscriptError, parse_transcript, speaker_names, to_json

from .download import CONTENT_TYPES, check_destination
from .validation import check_submitted_url, parse_host_list

__all__ = ["Submission", "SubmitResult", "SubmissionRefused", "submit", "EXTERNAL_ID_MAX", "AGENT_CHANNELS"]

log = logging.getLogger("callreel.ingest.submission")

EXTERNAL_ID_MAX = 200
AUTH_MAX = 4096
AGENT_CHANNELS = ("left", "right")
AUTH_SCHEMES = ("basic", "bearer")
PRESENTATION = ("caller_name", "callee_name", "video_layout", "captions")


@dataclass(frozen=True)
class Submission:
    """One call to make a video of, as a front door understood it (every field still unchecked)."""

    source: str  # Source.SUBMITTED: "api" | "vapi" | "retell" | "elevenlabs"
    external_id: str  # the submitter's id for the call: the idempotency key, unique per source
    recording_url: str | None = None  # https, on a RECORDING_URL_HOSTS host; fetched by the ingest worker
    recording_auth: str | None = None  # "Bearer …" / "Basic …" for that fetch: kept sealed, never logged
    recording_path: Path | None = None  # or a local file to store as the recording (MP3, WAV, FLAC, Ogg, M4A)
    transcript: list[dict[str, Any]] | None = None  # turns as shared/transcript.py's JSON: speaker caller|callee, start, end, text
    caller_name: str | None = None
    callee_name: str | None = None
    video_layout: str | None = None  # a VIDEO_LAYOUT value
    captions: str | None = None  # burn | track | off
    avatars: Mapping[str, bytes] = field(default_factory=dict)  # side → image bytes (PNG/JPEG/WebP, checked as PUT …/avatars does)
    agent_channel: str | None = None  # "left" | "right": the channel of the AI agent (the caller side); None: CALLER_CHANNEL


@dataclass(frozen=True)
class SubmitResult:
    call_id: str
    created: bool  # False: (source, external_id) was already a call, returned as it is
    status: str  # the call's video_status
    queued: bool  # its first message was sent now (False for a duplicate, or a broker that refused: the sweeper starts it)


class SubmissionRefused(ValueError):
    """The submission cannot become a call; ``problems`` says why, one sentence each. Nothing was stored."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class _Checked:
    columns: dict[str, Any]  # presentation and channel columns
    transcript_json: str | None
    fmt: str | None  # the uploaded file's format
    sealed_auth: str | None


def _text_problem(name: str, value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{name} must be a non-empty string"
    if len(value) > limit:
        return f"{name} is {len(value)} characters long, at most {limit}"
    if value != value.strip() or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        return f"{name} has a control character or surrounding whitespace"
    return None


def _check(sub: Submission, settings: Settings) -> _Checked:
    problems: list[str] = []
    if sub.source not in Source.SUBMITTED:
        problems.append(f"source must be one of {', '.join(Source.SUBMITTED)}, not {sub.source!r}")
    problem = _text_problem("external_id", sub.external_id, EXTERNAL_ID_MAX)
    if problem:
        problems.append(problem)
    fmt, sealed = _check_recording(sub, settings, problems)
    columns = _check_presentation(sub, problems)
    transcript_json = _check_transcript(sub, settings, problems) if sub.transcript is not None else None
    if problems:
        raise SubmissionRefused(problems)
    return _Checked(columns=columns, transcript_json=transcript_json, fmt=fmt, sealed_auth=sealed)


def _check_recording(sub: Submission, settings: Settings, problems: list[str]) -> tuple[str | None, str | None]:
    """The uploaded file's format and the sealed credential (each None when there is none)."""
    if sub.recording_auth is not None and sub.recording_url is None:
        problems.append("recording_auth goes with a recording_url only")
    if (sub.recording_url is None) == (sub.recording_path is None):
        problems.append("give the recording as a URL or as a file, one of the two")
        return None, None
    if sub.recording_path is not None:
        return _check_file(Path(sub.recording_path), settings, problems), None
    try:
        hosts = parse_host_list(settings.recording_hosts_for(sub.source))
        url = urlsplit(check_submitted_url(sub.recording_url, hosts))
        # Told now rather than when the worker fetches it (which checks again, and every redirect).
        check_destination(url.hostname or "", url.port or 443, allowed=hosts.exact, who="the recording URL", setting="RECORDING_URL_HOSTS")
    except (ValueError, PermanentError) as exc:
        problems.append(str(exc))
    return None, (_seal_auth(sub.recording_auth, settings, problems) if sub.recording_auth is not None else None)


def _check_presentation(sub: Submission, problems: list[str]) -> dict[str, Any]:
    """The names, layout, captions (PATCH /calls/{callId}'s rules) and channel columns."""
    given = {name: getattr(sub, name) for name in PRESENTATION if getattr(sub, name) is not None}
    columns: dict[str, Any] = {}
    if given:
        columns, found = check_presentation(given)
        problems.extend(found)
    if sub.agent_channel is not None:
        if sub.agent_channel in AGENT_CHANNELS:
            columns["caller_channel"] = sub.agent_channel
        else:
            problems.append(f"agent_channel must be left or right, not {str(sub.agent_channel)[:20]!r}")
    problems.extend(f"avatars: {str(side)[:20]!r} is not a side (caller, callee)" for side in sub.avatars if side not in SIDES)
    return columns


def _seal_auth(value: object, settings: Settings, problems: list[str]) -> str | None:
    problem = _text_problem("recording_auth", value, AUTH_MAX)
    if problem:
        problems.append(problem.replace("whitespace", "whitespace (it is an Authorization header value)"))
        return None
    assert isinstance(value, str)
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() not in AUTH_SCHEMES or not credentials.strip():
        problems.append("recording_auth must be an Authorization header value: 'Basic <base64>' or 'Bearer <token>'")
        return None
    try:
        return seal(value, settings.api_token)
    except SealError as exc:
        problems.append(str(exc))
        return None


def _check_file(path: Path, settings: Settings, problems: list[str]) -> str | None:
    try:
        size = path.stat().st_size
    except OSError:
        problems.append("the recording file is missing")
        return None
    if size == 0:
        problems.append("the recording is empty (0 bytes)")
        return None
    if size > settings.recording_max_bytes:
        problems.append(f"the recording is {size} bytes, more than RECORDING_MAX_BYTES ({settings.recording_max_bytes})")
        return None
    fmt = recording_format(path)
    if fmt is None:
        problems.append("the recording is not an audio file callreel reads: send MP3, WAV, FLAC, Ogg or M4A")
    return fmt


def _check_transcript(sub: Submission, settings: Settings, problems: list[str]) -> str | None:
    if not isinstance(sub.transcript, list):
        problems.append("transcript must be a list of turns")
        return None
    own = [name if isinstance(name, str) else "" for name in (sub.caller_name, sub.callee_name)]
    aliases = {**speaker_names(settings.caller_label, settings.callee_label), **speaker_names(*own)}
    try:
        raw = json.dumps(sub.transcript).encode()
        transcript = parse_transcript(raw, format="json", duration=None, max_bytes=settings.transcript_max_bytes, aliases=aliases)
    except (TypeError, ValueError) as exc:  # TranscriptError is a ValueError
        found = exc.problems if isinstance(exc, TranscriptError) else [f"cannot be written as JSON ({exc})"]
        problems.extend(f"transcript: {p}" for p in found)
        return None
    return to_json(transcript)


def _existing(source: str, external_id: str) -> Call | None:
    return Call.get_or_none((Call.source == source) & (Call.external_id == external_id))


def _duplicate(call: Call) -> SubmitResult:
    return SubmitResult(call_id=call.id, created=False, status=call.video_status or VideoStatus.PENDING, queued=False)


def _upload_text(storage: Storage, text: str, key: str, settings: Settings) -> None:
    path = settings.tmp_dir / f"{key.replace('/', '-')}.part"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text(text, encoding="utf-8")
        storage.upload_file(path, key, "application/json")
    finally:
        path.unlink(missing_ok=True)


def _store(call_id: str, sub: Submission, checked: _Checked, settings: Settings, storage: Storage) -> tuple[dict[str, Any], list[str]]:
    """Store the call's objects; the columns that name them and the keys written (deleted should the row lose)."""
    columns: dict[str, Any] = {}
    written: list[str] = []
    try:
        for side, image in sub.avatars.items():
            key = store_avatar(call_id, side, image, settings, storage)
            written.append(key)
            columns[f"{side}_avatar_url"] = key
    except AvatarError as exc:
        _delete(storage, written)
        raise SubmissionRefused([f"avatar: {p}" for p in exc.problems]) from None
    if checked.transcript_json is not None:
        key = keys.transcript_key(call_id)
        _upload_text(storage, checked.transcript_json, key, settings)
        written.append(key)
        columns.update(transcript_url=storage.object_url(key), transcript_status=TranscriptStatus.SUPPLIED)
    if checked.fmt is not None:
        key = keys.recording_key(call_id, checked.fmt)
        storage.upload_file(Path(sub.recording_path or ""), key, content_type=CONTENT_TYPES[checked.fmt])
        written.append(key)
        columns["recording_format"] = checked.fmt
    return columns, written


def _delete(storage: Storage, written: list[str]) -> None:
    for key in written:
        try:
            storage.delete(key)
        except Exception:
            log.exception("could not delete %s", key)


def submit(sub: Submission, *, settings: Settings | None = None, storage: Storage | None = None) -> SubmitResult:
    """Make (or find) the call for ``sub``: check, store, record, enqueue. Raises SubmissionRefused."""
    settings = settings or get_settings()
    checked = _check(sub, settings)
    found = _existing(sub.source, sub.external_id)
    if found is not None:
        log.info("submission %s/%s is already call %s", sub.source, sub.external_id[:60], found.id, extra={"call_id": found.id})
        return _duplicate(found)

    storage = storage or get_storage()
    call_id = keys.new_call_id()
    stored, written = _store(call_id, sub, checked, settings, storage)
    now = utcnow()
    uploaded = checked.fmt is not None
    values = {
        Call.id: call_id,
        Call.source: sub.source,
        Call.external_id: sub.external_id,
        Call.recording_url: sub.recording_url,
        Call.recording_auth: checked.sealed_auth,
        Call.video_status: VideoStatus.PENDING,
        # An upload is stored already: its ingest is done, the audio stage is next.
        Call.stage: Stage.AUDIO if uploaded else Stage.INGEST,
        Call.ingest_started_at: now if uploaded else None,
        Call.ingest_finished_at: now if uploaded else None,
        Call.video_processing_started_at: now,
        Call.created_at: now,
        Call.updated_at: now,
        **{getattr(Call, name): value for name, value in {**checked.columns, **stored}.items()},
    }
    try:
        with database.atomic():
            inserted = database.execute(Call.insert(values).on_conflict_ignore()).rowcount == 1
    except IntegrityError:
        inserted = False
    if not inserted:  # another delivery of the same submission won the race
        _delete(storage, written)
        found = _existing(sub.source, sub.external_id)
        if found is None:
            raise RuntimeError(f"the call for {sub.source}/{sub.external_id[:60]} was neither inserted nor found")
        return _duplicate(found)

    log.info("submitted by %s (%s)", sub.source, "upload" if uploaded else "URL", extra={"call_id": call_id, "stage": Stage.INGEST})
    try:
        if uploaded:
            pipeline.start(Stage.AUDIO, call_id)
        else:
            contracts.send(contracts.DOWNLOAD_RECORDING, call_id=call_id)
        queued = True
    except Exception as exc:  # the row is stored as pending: the sweeper sends it on
        log.error("could not queue the submitted call: %s", exc, extra={"call_id": call_id})
        queued = False
    return SubmitResult(call_id=call_id, created=True, status=VideoStatus.PENDING, queued=queued)
