"""One call as a person reads it: built here once for the status API, the operator page and ``callreel status``.

The three used to build their own, and disagreed on two figures:

- The processing time. The API and ``callreel status`` showed the column
  ``video_processing_duration`` alone (nothing while the call runs, nothing
  for an ended call whose row the pipeline did not time), the page the time
  since ``video_processing_started_at``. The rule now is
  :func:`shared.calls.processing_seconds`: once the call has ended, the
  duration the pipeline recorded in that column (the figure the host
  application reads, so the views never contradict its database), else from
  the call's start and end times; while it runs, the time so far (``status``
  says it still runs).
- The call's length. ``callreel status`` took ``audio_duration or
  recording_duration``, which read a decoded length of 0.0 as unknown; the
  rule now is :func:`call_duration`.

Video and poster links depend on who reads: the app gives browsers a presigned URL or its
own ``/media/`` route, the command line the store's URL. So :func:`call_view`
takes ``link``, called only with the key of one of this call's own videos,
its poster, its transcript or its captions (whatever a URL column holds, nothing else is
ever signed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from . import keys
from .calls import call_segments, processing_seconds, stage_timeline
from .models import SIDES, Call, TranscriptStatus, utcnow
from .presentation import is_stored_avatar

__all__ = ["VideoLink", "video_key_in", "poster_key_in", "call_duration", "call_view", "presentation_view", "as_json"]

VideoLink = Callable[[str], "str | None"]


def video_key_in(call_id: str, stored_url: str | None) -> str | None:
    """The key of one of ``call_id``'s own videos that a stored URL ends with, else None."""
    if not stored_url:
        return None
    pattern = re.compile(rf"(videos/{re.escape(call_id)}(?:-(?:caller|callee)(?:-\d{{3}})?)?\.mp4)$")
    match = pattern.search(stored_url)
    return match.group(1) if match else None


def poster_key_in(call_id: str, stored_url: str | None) -> str | None:
    """The key of ``call_id``'s own poster (``videos/{callId}.jpg``) when a stored URL ends with it, else None."""
    key = f"videos/{call_id}.jpg"
    return key if stored_url and re.fullmatch(r"CA[0-9a-f]{32}", call_id) and stored_url.endswith("/" + key) else None


def call_duration(call: Call) -> float | None:
    """The recording's length: as the audio stage decoded it, else as Twilio reported it (a whole second)."""
    return call.audio_duration if call.audio_duration is not None else call.recording_duration


def _own_video(call_id: str, stored_url: str | None, link: VideoLink) -> str | None:
    key = video_key_in(call_id, stored_url)
    return link(key) if key else None


def _own_object(call_id: str, stored_url: str | None, key_of: Callable[[str], str], link: VideoLink) -> str | None:
    """A link to this call's transcript, captions or poster (``key_of`` names it) when the column holds a URL of it."""
    if not stored_url:
        return None
    key = key_of(call_id)
    return link(key) if stored_url.endswith(key) else None


def _segment_video(call_id: str, key: str | None, link: VideoLink) -> str | None:
    return link(key) if key and video_key_in(call_id, key) == key else None


PRESENTATION_COLUMNS = ("caller_name", "callee_name", "caller_avatar_url", "callee_avatar_url", "video_layout", "captions")


def presentation_view(call: Call) -> dict[str, Any]:
    """The call's own names, avatars, layout and captions mode; None: the deployment's setting applies.

    An avatar checked and stored by callreel shows as ``"uploaded"``: its object key is not the reader's business.
    """
    view = {}
    for column in PRESENTATION_COLUMNS:
        value = getattr(call, column)
        view[column] = "uploaded" if column.endswith("_avatar_url") and value and is_stored_avatar(value) else value
    return view


def call_view(call: Call, link: VideoLink, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything a person or the host app asks about one call; times are naive UTC (:func:`as_json` writes them)."""
    now = now or utcnow()
    stages = {
        row["stage"]: {key: row[key] for key in ("state", "started_at", "finished_at", "seconds", "attempts")}
        for row in stage_timeline(call)
    }
    sides = {
        side: {
            "state": call.side_state(side),
            "error": getattr(call, f"{side}_error"),
            "duration": getattr(call, f"{side}_duration"),
            "video_url": _own_video(call.id, getattr(call, f"{side}_video_url"), link),
        }
        for side in SIDES
    }
    segments = [
        {
            **{key: value for key, value in segment.items() if key != "video_key"},
            "video_url": _segment_video(call.id, segment["video_key"], link),
        }
        for segment in call_segments(call.id)
    ]
    return {
        "id": call.id,
        "status": call.video_status,
        "stage": call.stage,
        "error": call.video_error_message,
        "video_url": _own_video(call.id, call.video_url, link),
        "poster_url": _own_object(call.id, call.poster_url, keys.poster_key, link),
        "duration": call_duration(call),
        "no_speech": bool(call.no_speech),
        "sides": sides,
        "stages": stages,
        "segments": segments,
        "transcript_status": call.transcript_status or TranscriptStatus.NONE,
        "transcript_error": call.transcript_error,
        "transcript_url": _own_object(call.id, call.transcript_url, keys.transcript_key, link),
        "captions_url": _own_object(call.id, call.captions_url, keys.captions_key, link),
        "processing": {
            "started_at": call.video_processing_started_at,
            "completed_at": call.video_processing_completed_at,
            "seconds": processing_seconds(call, now),
        },
        "recording": {
            "sid": call.recording_sid,
            "duration": call.recording_duration,
            "channels": call.recording_channels,
            "format": call.recording_format or "mp3",
        },
        "presentation": presentation_view(call),
        # fal.ai at list prices (#26): the estimate until generation ends, then what the jobs cost.
        "fal_cost_usd": call.fal_cost_usd,
        "fal_cost_final": bool(call.fal_cost_final),
        "source": call.source,
        "external_id": call.external_id,  # the submitter's own id (POST /calls, a platform's call id)
        "created_at": call.created_at,
        "updated_at": call.updated_at,
    }


def as_json(value: Any) -> Any:
    """A view with its times as ISO 8601 UTC (``2026-11-26T03:00:00Z``), ready for ``json.dumps``."""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds") + "Z"
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value
