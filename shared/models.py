"""The tables: ``calls`` (shared with the host application) and ``callreel_segments``.

``calls`` keeps the column names the host application already uses
(``recording_url``, ``video_status``, ``fal_job_id``…) and adds what the
pipeline needs. Every column the pipeline adds is nullable, so the migration
can add it to a host table that already holds rows.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from peewee import (
    SQL,
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    FloatField,
    IntegerField,
    Model,
    TextField,
)

from .db import database
from .segments import job_seconds

__all__ = [
    "Call",
    "Segment",
    "VideoStatus",
    "Stage",
    "Source",
    "SideState",
    "SegmentState",
    "TranscriptStatus",
    "SIDES",
    "STAGES",
    "utcnow",
]

SIDES = ("caller", "callee")


class VideoStatus:
    PENDING = "pending"
    GENERATING = "generating"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    ALL = (PENDING, GENERATING, COMPLETED, PARTIAL, FAILED)
    TERMINAL = (COMPLETED, PARTIAL, FAILED)


class Source:
    """Where a call came from (``calls.source``)."""

    TWILIO = "twilio"  # the recording-status webhook
    LOCAL = "local"  # callreel render
    API = "api"  # POST /calls, callreel submit
    VAPI = "vapi"
    RETELL = "retell"
    ELEVENLABS = "elevenlabs"
    ALL = (TWILIO, LOCAL, API, VAPI, RETELL, ELEVENLABS)
    #: The ones whose recording arrives through services/ingest/submission.py.
    SUBMITTED = (API, VAPI, RETELL, ELEVENLABS)
    #: The ones whose recording may be one mixed (mono) channel: the audio stage routes it to
    #: two channels by the call's supplied transcript (services/audio/route.py).
    MIXED = (ELEVENLABS,)


class Stage:
    """Where a call is; the name of the service working on it, or ``done``."""

    INGEST = "ingest"
    AUDIO = "audio"
    GENERATION = "generation"
    COMPOSITOR = "compositor"
    DONE = "done"


if TYPE_CHECKING:
    # What the lazy lookup below returns, named for the type checker and the linters.
    from .pipeline import STAGES


def __getattr__(name: str) -> Any:
    # The stages' order is the pipeline table's (shared/pipeline.py), which
    # imports this module: read it from there when first asked for.
    if name == "STAGES":
        from .pipeline import STAGES

        return STAGES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SideState:
    """How one side's video stands (``caller_state`` / ``callee_state``)."""

    PENDING = "pending"
    SILENT = "silent"  # never speaks: nothing to pay for
    GENERATING = "generating"
    GENERATED = "generated"  # every segment has a video
    LOCAL = "local"  # no fal key: the compositor renders a local panel
    FAILED = "failed"  # generation failed for good: local panel, call is partial
    TERMINAL = (SILENT, GENERATED, LOCAL, FAILED)


class TranscriptStatus:
    """Where a call's words stand (``transcript_status``); captions never fail a video."""

    NONE = "none"  # no transcript, none asked for
    SUPPLIED = "supplied"  # the host application gave one (API, CLI, a platform's webhook)
    TRANSCRIBING = "transcribing"  # speech-to-text at fal.ai is running
    COMPLETED = "completed"  # transcribed
    FAILED = "failed"  # transcription failed: the video has no captions, the reason in transcript_error
    ALL = (NONE, SUPPLIED, TRANSCRIBING, COMPLETED, FAILED)


class SegmentState:
    PENDING = "pending"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINAL = (COMPLETED, FAILED)


def utcnow() -> dt.datetime:
    """Naive UTC, the same on SQLite and PostgreSQL ``timestamp`` columns."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class JSONField(TextField):
    """JSON stored as text, so SQLite and PostgreSQL hold it alike."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False

    # Declared for the type checker only (no column here): save() stamps it on the models that have one.
    updated_at: dt.datetime | None

    def save(self, *args: Any, **kwargs: Any) -> int:
        if hasattr(self, "updated_at"):
            self.updated_at = utcnow()
        return super().save(*args, **kwargs)


class Call(BaseModel):
    # The host application's columns (names fixed).
    id = CharField(primary_key=True, max_length=64)  # Twilio CallSid
    recording_url = TextField(null=True)
    recording_sid = CharField(null=True, max_length=64, unique=True)
    video_url = TextField(null=True)
    video_status = CharField(null=True, max_length=16, default=VideoStatus.PENDING)
    fal_job_id = TextField(null=True)
    video_error_message = TextField(null=True)
    caller_video_url = TextField(null=True)
    callee_video_url = TextField(null=True)
    video_processing_started_at = DateTimeField(null=True)
    video_processing_completed_at = DateTimeField(null=True)
    video_processing_duration = IntegerField(null=True)  # seconds, as the host stores it

    # What the pipeline adds.
    account_sid = CharField(null=True, max_length=64)
    recording_duration = IntegerField(null=True)  # seconds, as Twilio reports it
    recording_channels = IntegerField(null=True)
    stage = CharField(null=True, max_length=16, default=Stage.INGEST)
    source = CharField(null=True, max_length=16, default="twilio")  # Source.ALL: twilio | local | api | vapi | retell | elevenlabs
    caller_state = CharField(null=True, max_length=16, default=SideState.PENDING)
    callee_state = CharField(null=True, max_length=16, default=SideState.PENDING)
    caller_error = TextField(null=True)
    callee_error = TextField(null=True)
    caller_duration = FloatField(null=True)
    callee_duration = FloatField(null=True)
    caller_speech = JSONField(null=True)  # [[start, end], ...] seconds
    callee_speech = JSONField(null=True)
    audio_duration = FloatField(null=True)  # the recording's duration as decoded
    ingest_started_at = DateTimeField(null=True)
    ingest_finished_at = DateTimeField(null=True)
    audio_started_at = DateTimeField(null=True)
    audio_finished_at = DateTimeField(null=True)
    generation_started_at = DateTimeField(null=True)
    generation_finished_at = DateTimeField(null=True)
    compositor_started_at = DateTimeField(null=True)
    compositor_finished_at = DateTimeField(null=True)
    ingest_attempts = IntegerField(null=True, default=0)
    audio_attempts = IntegerField(null=True, default=0)
    generation_attempts = IntegerField(null=True, default=0)
    compositor_attempts = IntegerField(null=True, default=0)
    compose_enqueued_at = DateTimeField(null=True)  # set once by the fan-in
    sweep_count = IntegerField(null=True, default=0)  # times the sweeper re-enqueued it (shared/sweeper.py)
    rerender = BooleanField(null=True, default=False)
    # Per-call presentation, set by the host application (its row, PATCH /calls/{callId}, or
    # callreel render's options); None falls back to the deployment's setting.
    caller_name = TextField(null=True)  # CALLER_LABEL
    callee_name = TextField(null=True)  # CALLEE_LABEL
    caller_avatar_url = TextField(null=True)  # CALLER_AVATAR_URL
    callee_avatar_url = TextField(null=True)  # CALLEE_AVATAR_URL
    video_layout = CharField(null=True, max_length=16)  # VIDEO_LAYOUT
    captions = CharField(null=True, max_length=8)  # CAPTIONS: burn | track | off
    # The words: transcripts/{callId}.json, captions/{callId}.vtt (shared/keys.py).
    transcript_url = TextField(null=True)
    captions_url = TextField(null=True)
    transcript_status = CharField(null=True, max_length=16, default=TranscriptStatus.NONE)
    transcript_error = TextField(null=True)
    poster_url = TextField(null=True)  # videos/{callId}.jpg
    no_speech = BooleanField(null=True, default=False)  # neither side speaks: the video has no word in it
    # Share links are signed with this; a new nonce (or none) revokes every link given out before.
    share_nonce = CharField(null=True, max_length=64)
    # -- Submissions (#27: POST /calls and the platforms' webhooks, services/ingest/submission.py) --
    external_id = CharField(null=True, max_length=200)  # the submitter's idempotency key, unique per source
    recording_format = CharField(null=True, max_length=8)  # keys.RECORDING_FORMATS; None: mp3 (Twilio's)
    recording_auth = TextField(null=True)  # the fetch's Authorization header, encrypted (shared/secrets.py); cleared once fetched
    caller_channel = CharField(null=True, max_length=8)  # left | right; None: CALLER_CHANNEL
    # -- end of submissions --
    # -- the console's overview (#28): fal.ai's cost of this call in US dollars, recorded by the
    # generation stage (latency-and-cost work); None: not recorded, the overview estimates it.
    fal_cost_usd = FloatField(null=True)
    fal_cost_final = BooleanField(null=True, default=False)  # #26: False while fal_cost_usd is still the estimate
    created_at = DateTimeField(null=True, default=utcnow)
    updated_at = DateTimeField(null=True, default=utcnow)

    class Meta:
        table_name = "calls"
        # One call per (source, external_id): a submission delivered twice makes one call (NULLs never collide).
        indexes = ((("source", "external_id"), True),)

    def side_state(self, side: str) -> str:
        return getattr(self, f"{side}_state")

    def speech(self, side: str) -> list[list[float]]:
        return getattr(self, f"{side}_speech") or []


class Segment(BaseModel):
    """One fal.ai generation: a stretch ``[start, end)`` of one side's audio, or several laid end to end (``pieces``)."""

    id = AutoField()
    call_id = CharField(max_length=64, index=True)
    side = CharField(max_length=8)
    # The column is named index; peewee's stubs type Model.index, the classmethod this field hides on Segment.
    index = IntegerField()  # type: ignore[assignment]
    start = FloatField()
    end = FloatField()
    state = CharField(max_length=16, default=SegmentState.PENDING)
    audio_key = TextField(null=True)
    video_key = TextField(null=True)
    fal_request_id = CharField(null=True, max_length=64)
    cache_key = CharField(null=True, max_length=64, index=True)
    attempts = IntegerField(default=0)
    error = TextField(null=True)
    progress = TextField(null=True)
    submitted_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)  # when fal began running the current job (its queue wait excluded)
    finished_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # -- the global fal.ai concurrency cap (#26, shared/fal_slots.py): waiting for a slot since (None: not waiting).
    slot_wait_since = DateTimeField(null=True)
    # -- packing (#26): [[start, end, offset], …], the stretches of the call laid end to end in the job's audio
    # (start and end in the call, offset in the job's audio and video); None: the contiguous [start, end).
    pieces = JSONField(null=True)

    @property
    def seconds(self) -> float:
        """The job's audio (and video) length: what fal generates and bills (``shared.segments.job_seconds``)."""
        return job_seconds(float(self.start), float(self.end), self.pieces)

    class Meta:
        table_name = "callreel_segments"
        indexes = ((("call_id", "side", "index"), True),)
        constraints = [SQL("CHECK (side IN ('caller', 'callee'))")]


MODELS = (Call, Segment)
