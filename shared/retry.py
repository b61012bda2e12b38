"""Re-run a call from the first stage that did not finish, keeping what is done.

Used by ``callreel retry``, the operator page's retry button and the sweeper.
Finished stages are not redone: their outputs are in storage and their columns
are set. The stage that failed, and every stage after it, is reset and its
message sent again. A call whose video is done but whose transcription failed
is retried too: only the failed speech-to-text jobs run again (the avatar
sides are kept), then the video is composed again, with its captions.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from peewee import Field

from . import events, pipeline
from .models import SIDES, Call, Segment, SegmentState, SideState, Stage, TranscriptStatus, VideoStatus, utcnow
from .speech_jobs import SpeechJob

__all__ = ["RetryError", "first_unfinished_stage", "retry_call"]

log = logging.getLogger("callreel.retry")


class RetryError(Exception):
    """The call cannot be retried (unknown, or still being worked on)."""


first_unfinished_stage = pipeline.first_unfinished


def retry_call(call_id: str, *, force: bool = False, operator: str | None = None) -> str:
    """Re-enqueue ``call_id`` from its first unfinished stage; return that stage.

    Only failed and partial calls, and calls whose transcription failed, are
    retried, unless ``force`` (the sweeper, for calls stuck in a stage past the
    deadline). ``operator``: who asked, for the call's history (shared/events.py).
    """
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        raise RetryError(f"no call {call_id}")
    transcript_failed = call.transcript_status == TranscriptStatus.FAILED
    if call.video_status not in (VideoStatus.FAILED, VideoStatus.PARTIAL) and not transcript_failed and not force:
        raise RetryError(f"call {call_id} is {call.video_status}: only failed or partial calls (or failed transcriptions) are retried")
    stage = first_unfinished_stage(call)
    if stage is None:
        raise RetryError(f"call {call_id} has nothing left to do")
    now = utcnow()
    updates: dict[Field, Any] = {
        Call.video_processing_started_at: resumed_start(call, now),
        Call.video_status: VideoStatus.PENDING if stage in (Stage.INGEST, Stage.AUDIO) else VideoStatus.GENERATING,
        Call.video_error_message: None,
        Call.stage: stage,
        Call.video_processing_completed_at: None,
        Call.video_processing_duration: None,
        Call.compose_enqueued_at: None,
        Call.rerender: False,
        Call.updated_at: now,
    }
    for later in pipeline.later_stages(stage):
        updates[getattr(Call, f"{later}_finished_at")] = None
    if not force:  # a person asked: the sweeper may try again from scratch if it sticks
        updates[Call.sweep_count] = 0
    retried_sides = [s for s in SIDES if call.side_state(s) in (SideState.FAILED, SideState.GENERATING, SideState.PENDING)]
    if stage == Stage.GENERATION:
        for side in retried_sides:
            updates[getattr(Call, f"{side}_state")] = SideState.PENDING
            updates[getattr(Call, f"{side}_error")] = None
        retried = (Segment.call_id == call_id) & Segment.side.in_(retried_sides)
        Segment.update(
            {Segment.state: SegmentState.PENDING, Segment.attempts: 0, Segment.error: None, Segment.fal_request_id: None}
        ).where(retried & Segment.state.not_in((SegmentState.COMPLETED, SegmentState.SUBMITTED))).execute()
        # A job still at fal (its poll messages were lost) is followed again, not abandoned and paid for
        # twice: generation polls it, collects its video, or cancels it at fal once its time is up.
    if transcript_failed:
        # Only the jobs that failed are sent again; the words already heard are kept.
        updates[Call.transcript_status] = TranscriptStatus.NONE
        updates[Call.transcript_error] = None
        SpeechJob.update(
            {SpeechJob.state: SegmentState.PENDING, SpeechJob.attempts: 0, SpeechJob.error: None, SpeechJob.fal_request_id: None}
        ).where((SpeechJob.call_id == call_id) & (SpeechJob.state == SegmentState.FAILED)).execute()
    # The row is reset before the message is sent, so the worker that takes
    # it finds the call ready; if the send fails, the call ends as it was, with
    # its original reason, rather than waiting for a message that never comes.
    Call.update(updates).where(Call.id == call_id).execute()
    try:
        # Generation gets a message a side: a finished side only re-runs the fan-in.
        pipeline.start(stage, call_id)
    except Exception:
        Call.update(
            {
                Call.video_status: call.video_status,
                Call.video_processing_started_at: call.video_processing_started_at,
                Call.video_error_message: call.video_error_message,
                Call.stage: call.stage,
                Call.video_processing_completed_at: call.video_processing_completed_at,
                Call.video_processing_duration: call.video_processing_duration,
                Call.transcript_status: call.transcript_status,
                Call.transcript_error: call.transcript_error,
                Call.updated_at: utcnow(),
            }
        ).where(Call.id == call_id).execute()
        raise
    log.info("retry from %s", stage, extra={"call_id": call_id, "stage": stage})
    if not force:  # the sweeper records its own sweep (shared/sweeper.py)
        events.record(call_id, events.Kind.RETRIED, stage=stage, operator=operator, was=call.video_status)
    return stage


def resumed_start(call: Call, now: dt.datetime) -> dt.datetime | None:
    """Where the processing clock of a call that runs again starts, so the time it sat ended is not counted.

    ``processing_seconds`` (shared/calls.py) is the one rule: completed − started,
    or now − started while running. A call that ended after D seconds and is
    retried later resumes at D: its start moves to ``now − D``. A call that
    has not ended keeps its start.
    """
    if call.video_status in VideoStatus.TERMINAL and call.video_processing_duration is not None:
        return now - dt.timedelta(seconds=call.video_processing_duration)
    return call.video_processing_started_at

