"""Ending a side and handing the call to the compositor exactly once.

Both sides of a call are generated at the same time, often on two workers,
and the last segment of each can finish at the same instant. Who enqueues the
compose job is decided by one atomic UPDATE, not by a Dramatiq group (which
needs a result backend): it sets ``compose_enqueued_at`` only where it is
still NULL, both sides are terminal and the call is not being transcribed. The UPDATE and the send share one
transaction, so the row is marked exactly when the message went out: if the
send fails the mark is rolled back and a redelivery tries again. On
PostgreSQL a second UPDATE of the row waits for the first transaction and then
finds ``compose_enqueued_at`` set; SQLite serialises writers outright.
"""

from __future__ import annotations

import logging

from shared import events, pipeline, progress
from shared.compose_chunks import chunked
from shared.contracts import PRERENDER, send
from shared.db import database
from shared.models import Call, Segment, SegmentState, SideState, Stage, TranscriptStatus, VideoStatus, utcnow
from shared.settings import get_settings
from shared.storage import get_storage

__all__ = ["mark_side", "settle_side", "fan_in", "offer_chunks"]

log = logging.getLogger("callreel.generation")

OPEN_SIDE = (SideState.PENDING, SideState.GENERATING)


def mark_side(call_id: str, side: str, state: str, *, error: str | None = None, video_url: str | None = None) -> bool:
    """Move a side to a terminal ``state``, once: False if it had already ended."""
    column = getattr(Call, f"{side}_state")
    updates = {column: state, getattr(Call, f"{side}_error"): error, Call.updated_at: utcnow()}
    if video_url is not None:
        updates[getattr(Call, f"{side}_video_url")] = video_url
    query = Call.update(updates).where((Call.id == call_id) & (column.in_(OPEN_SIDE) | column.is_null()))
    changed = bool(query.execute())
    if changed:
        extra = {"call_id": call_id, "stage": Stage.GENERATION, "side": side}
        log.info("%s side %s%s", side, state, f": {error}" if error else "", extra=extra)
    return changed


def settle_side(call_id: str, side: str) -> None:
    """When every segment of the side has ended, end the side (GENERATED or FAILED), then try the fan-in."""
    segments = list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == side)).order_by(Segment.index))
    if not segments or any(s.state not in SegmentState.TERMINAL for s in segments):
        offer_chunks(call_id)
        return
    failed = [s for s in segments if s.state == SegmentState.FAILED]
    if failed:
        reasons = "; ".join(f"segment {s.index} ({s.start:.1f}-{s.end:.1f}s): {s.error}" for s in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        mark_side(call_id, side, SideState.FAILED, error=f"{len(failed)} of {len(segments)} segment(s) failed: {reasons}{more}")
    else:
        key = segments[0].video_key if _whole_side(segments) else None
        url = get_storage().object_url(key) if key else None
        mark_side(call_id, side, SideState.GENERATED, video_url=url)
    if not fan_in(call_id):
        offer_chunks(call_id)  # the other side is still running


#: Seconds a segment's ends may miss the call's and still be the whole side.
WHOLE_SIDE_TOLERANCE = 0.05


def _whole_side(segments: list[Segment]) -> bool:
    """Whether the side's one video plays in step with the call: one contiguous segment from its start to its end.

    Only then is it worth a ``{side}_video_url``: a speech-mode segment leaves
    the silences out, and a packed one lays stretches from all over the call end to end.
    """
    if len(segments) != 1 or segments[0].pieces is not None or segments[0].start > WHOLE_SIDE_TOLERANCE:
        return False
    duration = Call.select(Call.audio_duration).where(Call.id == segments[0].call_id).scalar()
    return duration is not None and segments[0].end >= duration - WHOLE_SIDE_TOLERANCE


def fan_in(call_id: str) -> bool:
    """Start the next stage if both sides and the transcription have ended and nobody has yet; True for the one caller that did.

    This is the generation stage's finish and hand-on (``shared.skeleton`` runs
    them for the other stages): the stage's end, the next stage's message
    (from the pipeline table), then the call moved on.
    """
    following = pipeline.next_stage(Stage.GENERATION)
    now = utcnow()
    with database.atomic():
        won = (
            Call.update({Call.compose_enqueued_at: now, Call.generation_finished_at: now, Call.updated_at: now})
            .where(
                (Call.id == call_id)
                & Call.compose_enqueued_at.is_null()
                & Call.caller_state.in_(SideState.TERMINAL)
                & Call.callee_state.in_(SideState.TERMINAL)
                # The words are waited for too (services/generation/stt.py): every job of theirs is bounded.
                & (Call.transcript_status.is_null() | (Call.transcript_status != TranscriptStatus.TRANSCRIBING))
                & (Call.video_status.is_null() | Call.video_status.not_in(VideoStatus.TERMINAL))
            )
            .execute()
        )
        if won:
            pipeline.start(following, call_id)
    if won:
        progress.advance(call_id, Stage.GENERATION, following)  # first: the call is the compositor's from here on
        events.record(call_id, events.Kind.STAGE_FINISHED, stage=Stage.GENERATION)
        _final_cost(call_id)
        log.info("both sides ended: compose enqueued", extra={"call_id": call_id, "stage": Stage.GENERATION})
    return bool(won)


def _final_cost(call_id: str) -> None:
    """The call's fal.ai cost, now that every job has ended (services/generation/costs.py)."""
    from shared.fal_models import model_for
    from shared.settings import get_settings

    from .costs import finalize

    settings = get_settings()
    if settings.uses_fal:
        finalize(call_id, model_for(settings.fal_model))


def offer_chunks(call_id: str) -> None:
    """A segment's video or words are stored: let the compositor render the chunks of a long call they complete (#26).

    Only for a call the compositor renders in chunks, while it is in
    generation; the compositor looks at the rows and renders what is ready
    (services/compositor/early.py), so a message too many costs one query. The
    last segment's fan-in sends none: the compose renders what is left.
    """
    settings = get_settings()
    if not settings.compose_early_chunks or settings.compose_chunk_seconds <= 0:
        return
    call = Call.select(Call.stage, Call.audio_duration).where(Call.id == call_id).first()
    if call is not None and call.stage == Stage.GENERATION and chunked(call.audio_duration, settings.compose_chunk_seconds):
        send(PRERENDER, call_id=call_id)
