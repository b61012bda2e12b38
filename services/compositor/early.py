"""Chunks of a long call rendered while its generation still runs, so the compose after the last fal result is short (#26).

A chunk shows only the segments inside its frames (and the words around
them), so it can be rendered as soon as those are stored, long before the
last segment of the call. Generation sends ``prerender(call_id)`` each time a
segment's video or a speech-to-text job is stored; this module then::

    the rows only (no download): a chunked call in generation, nothing failed,  ──▶ nothing ready: done
    windows whose segments (and words) are all stored and not rendered yet
        │
    the call's render as far as it is known (composer.early_spec)
    each ready window: its digest → its row (kept or made pending) → claim → render, upload, done

The rows are a cache, never a second way to make the video: the call stays in
``generation`` and the compose plans the same windows (from the segment rows),
computes every chunk's digest from the final spec, joins the rows that are
done with that digest and renders the others again (services/compositor/chunks.py).
So a chunk rendered from a guess that turned out wrong (another panel shape,
a side that later failed and is shown as a local panel, a cue a later turn
cuts short) costs a render, never a wrong frame. Every step is a conditional
UPDATE: a redelivered or duplicate message renders nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared import pipeline, skeleton
from shared.channels import with_call_channel
from shared.compose_chunks import ChunkState, ComposeChunk
from shared.ffmpeg import FFmpegError, FFmpegKilled
from shared.logs import log_context
from shared.models import Call, Segment, SegmentState, SideState, Stage, TranscriptStatus, VideoStatus
from shared.settings import Settings, get_settings
from shared.speech_jobs import SpeechJob
from shared.storage import get_storage

from . import chunks
from .captions import MAX_SECONDS
from .composer import early_spec
from .graph import Window
from .layout import frame_at
from .transcripts import mode_of

__all__ = ["Ready", "ready", "prerender"]

log = logging.getLogger("callreel.compositor")

#: Rows of a chunk that an early render leaves alone: rendered, being rendered, or failed (the compose's to settle).
SETTLED = (ChunkState.DONE, ChunkState.RENDERING, ChunkState.FAILED)


@dataclass
class Ready:
    """What the rows say can be rendered now: the call's windows, the ready ones' indexes, the words heard so far."""

    windows: list[Window]
    indexes: list[int]
    jobs: list[SpeechJob]  # the speech-to-text jobs done, when the captions come from them; empty: the stored transcript


def ready(call: Call, settings: Settings) -> Ready | None:
    """The chunks of ``call`` that can be rendered early, from its rows alone (None: none, or not a call for it).

    A window is ready when every segment of both sides around its frames is
    stored, and, when its captions come from a transcription still running,
    every speech-to-text job whose words could be on screen in it; and its
    row is not done, being rendered or failed. Nothing is ready once a
    segment or a speech-to-text job has failed (the final render differs:
    a local panel, no captions), nor for a side with no video yet (its panel
    is not known to be a generated one).
    """
    segments = _segments(call, settings)
    if segments is None:
        return None
    jobs: list[SpeechJob] = []
    words = mode_of(call, settings) != "off" and call.transcript_status == TranscriptStatus.TRANSCRIBING
    if words:
        jobs = list(SpeechJob.select().where(SpeechJob.call_id == call.id))
        if any(j.state == SegmentState.FAILED for j in jobs):
            return None
    fps, duration = settings.video_fps, float(call.audio_duration or 0.0)
    bounds = sorted({t for s in segments for t in (s.start, s.end)})
    windows = chunks.plan_windows(duration, fps, settings.compose_chunk_seconds, bounds)
    rows = {r.index: r for r in ComposeChunk.select().where(ComposeChunk.call_id == call.id)}
    indexes = []
    for index, (first, last) in enumerate(windows):
        row = rows.get(index)
        if row is not None and row.state in SETTLED and (row.first_frame, row.last_frame) == (first, last):
            continue
        # A segment's frames are cut where layout.timeline cuts them.
        if any(frame_at(s.start, fps) < last and frame_at(s.end, fps) > first and not _stored(s) for s in segments):
            continue
        # The cues the chunk's .ass keeps (graph.build_chunk_command), and words a cue may run on from (MAX_SECONDS).
        start, end = (first - 0.5) / fps - MAX_SECONDS, (last - 0.5) / fps
        if words and any(j.start < end and j.end > start and j.state != SegmentState.COMPLETED for j in jobs):
            continue
        indexes.append(index)
    if not indexes:
        return None
    return Ready(windows, indexes, [j for j in jobs if j.state == SegmentState.COMPLETED])


def _segments(call: Call, settings: Settings) -> list[Segment] | None:
    """The call's segment rows, when it is a chunked call in generation with nothing failed and a video on every generated side."""
    if call.stage != Stage.GENERATION or call.video_status in VideoStatus.TERMINAL or call.rerender:
        return None
    if not settings.compose_early_chunks or not chunks.chunked(call.audio_duration or 0.0, settings):
        return None
    if any(call.side_state(side) == SideState.FAILED for side in ("caller", "callee")):
        return None
    segments = list(Segment.select().where(Segment.call_id == call.id))
    if any(s.state == SegmentState.FAILED for s in segments):
        return None
    for side in ("caller", "callee"):
        own = [s for s in segments if s.side == side]
        if own and not any(_stored(s) for s in own):
            return None
    return segments


def _stored(segment: Segment) -> bool:
    return segment.state == SegmentState.COMPLETED and bool(segment.video_key)


def prerender(call_id: str) -> None:
    """Render the chunks of ``call_id`` whose inputs are all stored, if nobody has: best effort, never the call's failure."""
    skeleton.check_call_id(call_id)
    call = Call.get_or_none(Call.id == call_id)
    settings = get_settings()
    found = ready(call, settings) if call is not None else None
    if call is None or found is None:
        return
    storage = get_storage()
    extra = {"call_id": call_id, "stage": Stage.COMPOSITOR}
    with log_context(**extra), pipeline.temp_folder(Stage.COMPOSITOR, call_id, settings.tmp_dir) as workdir:
        try:
            spec = early_spec(call, settings, storage, workdir, [found.windows[i] for i in found.indexes], found.jobs)
        except FFmpegKilled:
            raise
        except Exception as exc:  # the compose meets the same trouble and handles it as a whole render would
            log.info("no early chunks: %s", exc, extra=extra)
            return
        hashes: dict = {}
        rendered = []
        for index in found.indexes:
            window = found.windows[index]
            row = chunks.settle_row(call_id, index, window, chunks.chunk_digest(spec, window, settings, hashes), storage, early=True)
            if row is None or row.state != ChunkState.PENDING or not chunks.claim(row, settings):
                continue
            try:
                chunks.render_claimed(row, spec, settings, storage, extra)
            except FFmpegKilled:
                raise  # given back (chunks.render_claimed): the compose or another message takes it
            except FFmpegError as exc:
                log.warning("early chunk %d failed: %s", index, exc, extra=extra)
                continue
            rendered.append(index)
        if rendered:
            log.info("chunks %s of %d rendered early", rendered, len(found.windows), extra=extra)
        # The sound track depends on the recording and the mix settings only: once, by whichever message is first.
        if chunks.render_sound(call_id, spec, with_call_channel(call, settings), storage, extra):
            log.info("sound track rendered early", extra=extra)


def indexes_done(call_id: str) -> Sequence[int]:
    """The chunks of the call done so far (tests, the benchmark)."""
    return [r.index for r in ComposeChunk.select().where((ComposeChunk.call_id == call_id) & (ComposeChunk.state == ChunkState.DONE))]
