"""Read-only views of calls for the command line."""

from __future__ import annotations

from typing import Any

from shared.keys import validate_call_id
from shared.models import STAGES, Call, Segment

from .errors import CliError

__all__ = ["call_summary", "list_calls"]


def call_summary(call_id: str) -> dict[str, Any]:
    call = Call.get_or_none(Call.id == validate_call_id(call_id))
    if call is None:
        raise CliError(f"no call {call_id}")
    stages = {}
    for stage in STAGES:
        started, finished = getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at")
        stages[stage] = {
            "started_at": started,
            "finished_at": finished,
            "seconds": round((finished - started).total_seconds(), 3) if started and finished else None,
            "attempts": getattr(call, f"{stage}_attempts"),
        }
    segments = [
        {"side": s.side, "index": s.index, "start": s.start, "end": s.end, "state": s.state,
         "fal_request_id": s.fal_request_id, "attempts": s.attempts, "error": s.error}
        for s in Segment.select().where(Segment.call_id == call.id).order_by(Segment.side, Segment.index)
    ]
    return {
        "id": call.id,
        "status": call.video_status,
        "stage": call.stage,
        "error": call.video_error_message,
        "video_url": call.video_url,
        "caller": {"state": call.caller_state, "video_url": call.caller_video_url, "error": call.caller_error},
        "callee": {"state": call.callee_state, "video_url": call.callee_video_url, "error": call.callee_error},
        "recording_sid": call.recording_sid,
        "duration": call.audio_duration or call.recording_duration,
        "processing_seconds": call.video_processing_duration,
        "stages": stages,
        "segments": segments,
        "created_at": call.created_at,
    }


def list_calls(status: str | None = None, limit: int = 50) -> list[Call]:
    query = Call.select().order_by(Call.created_at.desc(), Call.id)
    if status:
        query = query.where(Call.video_status == status)
    return list(query.limit(max(1, min(limit, 1000))))
