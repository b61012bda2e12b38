"""Read-only views of calls for the command line (built on ``shared.calls``, as the operator page is)."""

from __future__ import annotations

from typing import Any

from shared.calls import call_segments, newest_calls, stage_timeline
from shared.keys import validate_call_id
from shared.models import Call

from .errors import CliError

__all__ = ["call_summary", "list_calls"]


def call_summary(call_id: str) -> dict[str, Any]:
    call = Call.get_or_none(Call.id == validate_call_id(call_id))
    if call is None:
        raise CliError(f"no call {call_id}")
    stages = {
        row["stage"]: {key: row[key] for key in ("state", "started_at", "finished_at", "seconds", "attempts")}
        for row in stage_timeline(call)
    }
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
        "segments": call_segments(call.id),
        "created_at": call.created_at,
    }


def list_calls(status: str | None = None, limit: int = 50) -> list[Call]:
    return newest_calls(status=status, limit=max(1, min(limit, 1000)))
