"""A call's captions at compose time: its stored transcript read and laid out as cues, the WebVTT published.

Captions never fail a video. Whatever goes wrong with them (no transcript
stored, one refused against the call's length, files that cannot be written,
a render that fails only with them) leaves the video without captions and
the reason in ``transcript_error``; ``video_status`` is decided by the
picture and the sound alone.

Whoever stores a transcript (the API, ``callreel render --transcript``,
speech-to-text) writes ``transcripts/{callId}.json`` with
``shared.transcript.to_json``; it is checked again here, against the
recording's own length, because that is what the cues must fit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared import disk, keys
from shared.errors import EnvironmentFailure
from shared.models import Call
from shared.presentation import presentation_for
from shared.settings import Settings
from shared.storage import ObjectNotFound, Storage
from shared.transcript import SPEAKERS, Transcript, TranscriptError, Turn, parse_transcript, to_json

from .captions import Cue, write_webvtt

__all__ = ["CallCaptions", "load", "heard", "publish"]

log = logging.getLogger("callreel.compositor")


@dataclass
class CallCaptions:
    """What the call's video shows of its words, and what to record about them."""

    mode: str  # burn | track | off (the call's own, else CAPTIONS)
    stored: bool = False  # a transcript is stored: the transcript columns are the compositor's to record
    turns: tuple[Turn, ...] = ()  # the transcript's, checked against the call
    cues: list[Cue] = field(default_factory=list)  # laid out for the frame (the composer does, knowing the layout)
    names: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why the video has no captions
    url: str | None = None  # the published WebVTT

    @property
    def columns(self) -> dict[str, Any]:
        """The call's columns this compose decides (none when it had no transcript or captions are off)."""
        if not self.stored or self.mode == "off":
            return {}
        return {"captions_url": self.url, "transcript_error": self.error[:4000] if self.error else None}

    def fail(self, reason: str, extra: dict[str, Any]) -> None:
        log.warning("no captions: %s", reason, extra=extra)
        self.error, self.turns, self.cues, self.url = reason, (), [], None


def mode_of(call: Call, settings: Settings) -> str:
    return presentation_for(call, settings).captions  # the call's own mode, else CAPTIONS


def load(call: Call, settings: Settings, storage: Storage, workdir: Path, duration: float) -> CallCaptions:
    """The call's cues, read from its stored transcript (a refused one is the result's ``error``).

    Raises only an environmental failure (the store away, TMP_DIR full): then
    the whole compose is retried (``shared.outage``) rather than the video
    made for good without its captions.
    """
    captions = CallCaptions(mode=mode_of(call, settings))
    if captions.mode == "off":
        return captions
    extra = {"call_id": call.id, "stage": "compositor"}
    path = workdir / "transcript.json"
    try:
        storage.download_file(keys.transcript_key(call.id), path)
    except ObjectNotFound:
        return captions  # no words for this call: nothing to show, nothing to record
    except EnvironmentFailure:
        raise
    except Exception as exc:  # a store error that another try would meet too: the video goes on without captions
        full = disk.as_no_space(exc, workdir)
        if full is not None:
            raise full from exc
        captions.stored = True
        captions.fail(f"the transcript could not be read: {exc}", extra)
        return captions
    captions.stored = True
    look = presentation_for(call, settings)
    captions.names = {"caller": look.caller_name, "callee": look.callee_name}
    try:
        transcript = parse_transcript(path.read_bytes(), format="json", duration=duration, max_bytes=settings.transcript_max_bytes)
        captions.turns = transcript.turns
    except TranscriptError as exc:
        captions.fail(f"transcript refused: {'; '.join(exc.problems)}", extra)
    except OSError as exc:
        captions.fail(f"the transcript could not be read: {exc}", extra)
    return captions


def heard(call: Call, settings: Settings, jobs: Sequence[Any], duration: float) -> CallCaptions:
    """The words of the speech-to-text ``jobs`` done so far, read as :func:`load` reads them once all are stored.

    For chunks rendered while the call is still being transcribed: the same
    turns (through the same JSON and the same checks) that the stored
    transcript will give over these jobs' time.
    """
    captions = CallCaptions(mode=mode_of(call, settings))
    turns = [Turn(j.side, start, end, text) for j in jobs for start, end, text in (j.chunks or ())]
    if captions.mode == "off" or not turns:
        return captions
    captions.stored = True
    look = presentation_for(call, settings)
    captions.names = {"caller": look.caller_name, "callee": look.callee_name}
    try:
        ordered = sorted(turns, key=lambda t: (t.start, t.end, SPEAKERS.index(t.speaker)))  # as speech-to-text stores them
        document = to_json(Transcript(tuple(ordered))).encode()
        captions.turns = parse_transcript(document, format="json", duration=duration, max_bytes=settings.transcript_max_bytes).turns
    except TranscriptError as exc:
        captions.fail(f"transcript refused: {'; '.join(exc.problems)}", {"call_id": call.id, "stage": "generation"})
    return captions


def publish(call_id: str, captions: CallCaptions, storage: Storage, workdir: Path) -> None:
    """Upload the cues as ``captions/{callId}.vtt`` and keep its URL; a failure only costs the file."""
    if not captions.cues:
        return
    key = keys.captions_key(call_id)
    try:
        path = write_webvtt(workdir / "captions.vtt", captions.cues, captions.names)
        storage.upload_file(path, key, content_type="text/vtt")
    except Exception as exc:  # the video carries its captions already; only the separate file is missing
        log.warning("captions file not stored: %s", exc, extra={"call_id": call_id, "stage": "compositor"})
        captions.error = f"the captions file could not be stored: {exc}"
        return
    captions.url = storage.object_url(key)
