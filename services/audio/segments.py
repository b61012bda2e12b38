"""Cutting a side's fal.ai segments, for the generation stage (which has no FFmpeg).

Only when FAL_KEY is set. The segments are planned by ``shared.segments`` from
the side's speech, cut from the side's MP3 with ``atrim`` (exact to the sample;
stream copy would cut on whole MP3 frames and shift the lips against the
call), uploaded, and recorded as ``Segment`` rows the generation stage submits.

A side's cuts share one decode: the side is read once and ``asplit`` feeds one
trimmed, re-encoded output per segment. A long call in ``speech`` mode can have
hundreds of segments, so outputs are written in batches, which bounds the
encoders FFmpeg holds at once. A segment that is the whole side (every call up
to the model's limit, in ``full`` mode) is the side's MP3 itself: linked, not
decoded and encoded again (no second generation loss, and one FFmpeg run less
per side; measured: docs/benchmarks.md, section "Whole-side segments").

A packed segment (speech mode with SPEECH_PACKING, ``shared.segments``) is
several stretches of the side laid end to end: one ``atrim`` per piece from the
same decode, joined by ``concat`` into the segment's one output. Its row keeps
the pieces (``Segment.pieces``), so the compositor can put each back at its
time in the call and speech-to-text can map its words there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from shared import keys
from shared.fal_models import model_for, segment_limit
from shared.ffmpeg import RECORDING, FFmpegFailed, file_url, input_options, run
from shared.models import Segment, SegmentState, utcnow
from shared.segments import Interval, Piece, packed_limit, plan_jobs
from shared.settings import Settings
from shared.storage import Storage

from .split import MP3_QUALITY, SideAudio, SplitFailed

__all__ = ["PlannedSegment", "job_limit", "plan_side", "cut_command", "cut_side", "record_segments", "BATCH"]

BATCH = 16  # trims (outputs, or a packed output's pieces) per FFmpeg run
# A segment whose ends are this close to the side's is the whole side: the
# planner starts it at 0.0 and ends it at the measured duration.
WHOLE_SIDE_TOLERANCE = 0.001


@dataclass(frozen=True)
class PlannedSegment:
    index: int
    start: float
    end: float
    path: Path
    pieces: tuple[Piece, ...] | None = None  # packed: the stretches laid end to end (shared.segments.Job)

    @property
    def trims(self) -> list[tuple[float, float]]:
        """What is cut from the side's audio for this segment, in order: one stretch, or each piece."""
        return [(start, end) for start, end, _ in self.pieces] if self.pieces else [(self.start, self.end)]

    @property
    def stored_pieces(self) -> list[list[float]] | None:
        """The pieces as the row's JSON holds them."""
        return [list(piece) for piece in self.pieces] if self.pieces else None


def job_limit(settings: Settings, duration: float, sides: Sequence[Sequence[Interval]]) -> float:
    """The longest job to plan: SEGMENT_MAX_SECONDS within the model's limit; packed jobs sized to the fal cap's waves."""
    model = model_for(settings.fal_model)
    limit = segment_limit(model, settings.segment_max_seconds)
    if settings.speech_packing and settings.generation_mode == "speech":
        limit = packed_limit(
            sides, duration, slots=settings.fal_max_concurrent_jobs, max_seconds=limit, min_billed=model.min_seconds,
            padding=settings.speech_padding,
        )
    return limit


def plan_side(side: str, audio: SideAudio, workdir: Path, settings: Settings, *, max_seconds: float) -> list[PlannedSegment]:
    """The side's segments as ``shared.segments`` plans them, none longer than ``max_seconds`` (:func:`job_limit`)."""
    model = model_for(settings.fal_model)
    jobs = plan_jobs(
        audio.duration,
        [(start, end) for start, end in audio.speech],
        mode=settings.generation_mode,
        max_seconds=max_seconds,
        padding=settings.speech_padding,
        min_billed=model.min_seconds,
        pack=settings.speech_packing,
    )
    return [PlannedSegment(i, job.start, job.end, workdir / f"{side}-{i:03d}.mp3", job.pieces) for i, job in enumerate(jobs)]


def cut_command(source: Path, segments: Sequence[PlannedSegment], ffmpeg_binary: str) -> list[str]:
    """One FFmpeg command writing each of ``segments`` from ``source``: a packed one's pieces trimmed and concatenated."""
    count = sum(len(segment.trims) for segment in segments)
    branches = ffmpeg.input(file_url(source), **input_options(source, RECORDING))["a:0"].filter_multi_output("asplit", count)
    outputs, used = [], 0
    for segment in segments:
        parts = []
        for start, end in segment.trims:
            parts.append(branches.stream(used).filter("atrim", start=f"{start:.3f}", end=f"{end:.3f}").filter("asetpts", "PTS-STARTPTS"))
            used += 1
        # The pieces follow each other in the call, so each ends before the next begins to flow: concat buffers nothing.
        audio = parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, n=len(parts), v=0, a=1)
        outputs.append(ffmpeg.output(audio, str(segment.path), acodec="libmp3lame", **{"q:a": MP3_QUALITY}))
    return (
        ffmpeg.merge_outputs(*outputs)
        .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
        .compile(cmd=ffmpeg_binary, overwrite_output=True)
    )


def _is_whole_side(segment: PlannedSegment, audio: SideAudio) -> bool:
    return segment.pieces is None and segment.start <= WHOLE_SIDE_TOLERANCE and segment.end >= audio.duration - WHOLE_SIDE_TOLERANCE


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)


def cut_side(audio: SideAudio, segments: Sequence[PlannedSegment], workdir: Path, settings: Settings) -> None:
    """Write every planned segment of one side to its path."""
    to_cut = []
    for segment in segments:
        if _is_whole_side(segment, audio):
            _link_or_copy(audio.path, segment.path)
        else:
            to_cut.append(segment)
    for batch in _batches(to_cut):
        try:
            run(
                cut_command(audio.path, batch, settings.ffmpeg_binary),
                timeout=settings.split_timeout,
                stderr=workdir / "cut.log",
            )
        except FFmpegFailed as exc:
            raise SplitFailed(f"ffmpeg could not cut the segments: {exc.detail}") from None


def _batches(segments: Sequence[PlannedSegment]) -> list[list[PlannedSegment]]:
    """Runs of segments with at most BATCH trims each (a packed segment counts its pieces), a segment never split."""
    batches: list[list[PlannedSegment]] = []
    trims = 0
    for segment in segments:
        if not batches or (trims + len(segment.trims) > BATCH and batches[-1]):
            batches.append([])
            trims = 0
        batches[-1].append(segment)
        trims += len(segment.trims)
    return batches


def record_segments(call_id: str, side: str, segments: Sequence[PlannedSegment], storage: Storage) -> None:
    """Upload the cut segments and make their rows; a redelivered message finds them and changes nothing."""
    for segment in segments:
        key = keys.segment_audio_key(call_id, side, segment.index)
        storage.upload_file(segment.path, key, content_type="audio/mpeg")
        planned = {"start": segment.start, "end": segment.end, "audio_key": key, "pieces": segment.stored_pieces}
        row, created = Segment.get_or_create(
            call_id=call_id, side=side, index=segment.index, defaults={**planned, "state": SegmentState.PENDING}
        )
        if not created and row.state == SegmentState.PENDING and (row.start, row.end, row.audio_key, row.pieces) != tuple(planned.values()):
            # A retried call re-planned with other settings: the audio just uploaded is the truth.
            Segment.update(**planned, updated_at=utcnow()).where(Segment.id == row.id).execute()
    # Rows past the new plan (a shorter re-plan) that no job has taken yet.
    Segment.delete().where(
        (Segment.call_id == call_id)
        & (Segment.side == side)
        & (Segment.index >= len(segments))
        & (Segment.state == SegmentState.PENDING)
    ).execute()
