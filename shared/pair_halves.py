"""Half of a call waiting for its other half (``callreel_pair_halves``): ElevenLabs' two post-call webhooks.

ElevenLabs sends a conversation's transcript (``post_call_transcription``) and
its audio (``post_call_audio``) as two webhooks, in either order, each maybe
more than once. The first to arrive is kept here, durably, until the other
comes: the transcript's turns as JSON in the row, the audio in the object
store under ``audio_key`` (never in a process's memory). The request that
completes the pair claims the row (one ``DELETE … RETURNING``: one winner) and
makes the call; a half left alone past ``ELEVENLABS_PAIR_TIMEOUT`` is settled
by ``callreel sweep`` (services/ingest/platforms/pairing.py). Its own module and
table beside ``shared.models``: ``shared.migrations`` creates it with the others.
"""

from __future__ import annotations

from peewee import CharField, DateTimeField, Model, TextField

from .db import database
from .models import JSONField, utcnow

__all__ = ["PairHalf"]


class PairHalf(Model):
    """What has arrived of one platform call: its audio, its transcript, or (for an instant) both."""

    source = CharField(max_length=16)  # the platform (Source.ELEVENLABS)
    external_id = CharField(max_length=200)  # its conversation id
    audio_key = TextField(null=True)  # pairs/… in the object store
    audio_format = CharField(max_length=8, null=True)
    turns = JSONField(null=True)  # shared/transcript.py's JSON turns, mapped from the platform's transcript
    created_at = DateTimeField(default=utcnow)  # when the first half arrived: the timeout counts from here
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "callreel_pair_halves"
        indexes = ((("source", "external_id"), True),)
