"""The time chunks a long call's video is rendered in: one row per chunk (``callreel_compose_chunks``).

A call at least ``CHUNKED_FROM`` × COMPOSE_CHUNK_SECONDS long is rendered by
any compositor replica chunk by chunk (services/compositor/chunks.py) and
joined without re-encoding. A row says which frames a chunk covers, which
render it belongs to (``plan``: a digest of the chunk's own command and of
every byte it reads, so a row rendered from other inputs, early or by an older
render, is never joined into a new one), who
renders it and where its video is. Every step is a conditional UPDATE, so a
redelivered message finds the chunk claimed or done and does nothing. Its own
module and table, beside ``shared.models``: ``shared.migrations`` creates it
with the other tables.
"""

from __future__ import annotations

from peewee import AutoField, CharField, DateTimeField, IntegerField, Model, TextField

from .db import database
from .models import utcnow

__all__ = ["ComposeChunk", "ChunkState", "CHUNKED_FROM", "chunked"]

#: Calls shorter than this many chunks render in one pass (services/compositor/chunks.py says why).
CHUNKED_FROM = 2.5


def chunked(duration: float | None, chunk_seconds: float) -> bool:
    """Whether a call this long is rendered in chunks: the compositor decides so, and generation offers its chunks early."""
    return chunk_seconds > 0 and duration is not None and duration >= CHUNKED_FROM * chunk_seconds


class ChunkState:
    PENDING = "pending"
    RENDERING = "rendering"
    DONE = "done"
    FAILED = "failed"


class ComposeChunk(Model):
    """Frames ``[first_frame, last_frame)`` of one call's video, rendered on their own."""

    id = AutoField()
    call_id = CharField(max_length=64, index=True)
    index = IntegerField()  # type: ignore[assignment]  # the chunk's place in the video (a column, not peewee's Model.index)
    plan = CharField(max_length=64)  # what the chunk's frames are made of (services/compositor/chunks.py: chunk_digest)
    first_frame = IntegerField()
    last_frame = IntegerField()
    state = CharField(max_length=16, default=ChunkState.PENDING)
    video_key = TextField(null=True)
    owner = CharField(max_length=128, null=True)  # the process rendering it (shared/owners.py tag)
    attempts = IntegerField(default=0)
    error = TextField(null=True)
    claimed_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "callreel_compose_chunks"
        indexes = ((("call_id", "index"), True),)
