"""Speech-to-text jobs at fal.ai: one row per segment of a call's audio (``callreel_speech_jobs``).

A call with no supplied transcript is transcribed segment by segment: the
audio stage has already cut each side into segments (``Segment`` rows, their
audio in the store), and a segment's words, offset by the segment's start, are
on the call's timeline. A row here follows one such job the way a ``Segment``
row follows a video job (state, fal request id, attempts), so a redelivered
message finds the job recorded and never submits it twice. Its own module and
table, beside ``shared.models``: ``shared.migrations`` creates it with the
other tables.
"""

from __future__ import annotations

from peewee import SQL, AutoField, CharField, DateTimeField, FloatField, IntegerField, Model, TextField

from .db import database
from .models import JSONField, SegmentState, utcnow

__all__ = ["SpeechJob", "SpeechState"]

#: The same life as a segment's: pending → submitted → completed | failed.
SpeechState = SegmentState


class SpeechJob(Model):
    """The transcription of one segment ``[start, end)`` of one side; ``chunks`` hold its words on the call's timeline."""

    id = AutoField()
    call_id = CharField(max_length=64, index=True)
    side = CharField(max_length=8)
    index = IntegerField()  # type: ignore[assignment]  # the segment's index (a column, not peewee's Model.index)
    start = FloatField()  # where the segment's audio starts in the call: added to every chunk's times
    end = FloatField()
    audio_key = TextField(null=True)
    state = CharField(max_length=16, default=SegmentState.PENDING)
    fal_request_id = CharField(null=True, max_length=64)
    attempts = IntegerField(default=0)
    chunks = JSONField(null=True)  # [[start, end, text], …] in call seconds
    pieces = JSONField(null=True)  # the segment's (packing, #26): chunks are mapped to the call through them
    error = TextField(null=True)
    progress = TextField(null=True)
    submitted_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "callreel_speech_jobs"
        indexes = ((("call_id", "side", "index"), True),)
        constraints = [SQL("CHECK (side IN ('caller', 'callee'))")]
