"""One call's render, from the object store to the object store, in a temp folder of its own.

``compose_call`` decides what each panel shows, renders, uploads and says how
it went (an :class:`Outcome`); writing the outcome to the call's row is the
actor's job. The decisions, side by side:

==========================  ==========================================  ==============
side state                  panel                                       call status
==========================  ==========================================  ==============
generated, videos usable    its segment videos at their start times     completed
                            (a packed one's pieces at theirs),
                            idle avatar in the gaps
generated, a video bad      local panel                                 partial
failed                      local panel                                 partial
local (no fal key), silent  local panel                                 completed
anything else               local panel                                 partial
==========================  ==========================================  ==============

A full TMP_DIR is not the call's fault: before anything is fetched the free
space is checked against an estimate from the inputs' sizes, and an FFmpeg
or probe failure that comes from the disk (ENOSPC, or a file cut short on a
folder with no room left: "moov atom not found") raises ``NoSpace``, retried
with backoff (``shared.outage``), never a ``partial`` video.

If FFmpeg cannot stitch at all, the generated side videos are still worth
having: the call ends ``partial`` with ``caller_video_url``/``callee_video_url``
pointing at them (the original plan's fallback), or ``failed`` when no side
has one.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from shared import disk, keys, pipeline
from shared.assets import avatar_path
from shared.channels import with_call_channel
from shared.errors import PermanentError
from shared.ffmpeg import (
    IMAGE,
    VIDEO,
    FFmpegError,
    FFmpegKilled,
    VideoInfo,
    file_url,
    probe_duration,
    probe_rendered,
    probe_video,
    sniff,
)
from shared.ffmpeg import InvalidMedia as MediaError
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus
from shared.presentation import Presentation, is_stored_avatar, presentation_for
from shared.settings import Settings
from shared.storage import ObjectNotFound, Storage
from shared.transcript import Turn

from . import chunks, transcripts
from .captions import caption_files, laid_out, line_width
from .graph import AUDIO_RATE, build_command
from .labels import fit_labels
from .layout import Clip, RenderSpec, SideSpec, panel_size
from .layouts import Layout, layout
from .media import detect_speech, resolve_font
from .mix import plan as plan_mix
from .poster import add_poster
from .runner import run_ffmpeg

__all__ = [
    "Outcome", "compose_call", "chunk_spec", "early_spec", "segment_boundaries", "space_needed", "render_spec", "render_layout",
    "side_video_urls",
]

log = logging.getLogger("callreel.compositor")

AVATAR_MAX_BYTES = 20 * 1024 * 1024
COMPLETES = (SideState.LOCAL, SideState.SILENT)  # a local panel by design, not by failure


@dataclass
class Outcome:
    status: str  # VideoStatus.COMPLETED / PARTIAL / FAILED
    video_url: str | None = None
    side_urls: dict[str, str | None] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    poster_url: str | None = None
    captions: dict[str, Any] = field(default_factory=dict)  # captions_url, transcript_error (.transcripts)

    @property
    def error(self) -> str | None:
        return "; ".join(self.reasons) or None


class _Fallback(Exception):
    """This side's generated video cannot be used: render its local panel instead."""


def compose_call(call: Call, settings: Settings, storage: Storage) -> Outcome:
    """Render ``call`` into ``videos/{callId}.mp4``; the temp folder goes in every outcome."""
    settings = with_call_channel(call, settings)  # a submitted call's own agent channel
    disk.ensure_free(settings.tmp_dir, space_needed(call, storage))
    with pipeline.temp_folder(Stage.COMPOSITOR, call.id, settings.tmp_dir) as workdir:
        return _compose(call, settings, storage, workdir)


#: The render's output and the joins' copies, against the inputs' size: a generous multiple.
SPACE_FACTOR = 3
#: Avatars, captions, logs: the small files of every render.
SPACE_OVERHEAD = 20 * 1024 * 1024


def space_needed(call: Call, storage: Storage) -> int:
    """About the bytes a compose of ``call`` writes under TMP_DIR, from its inputs' sizes in the store."""
    inputs = [keys.recording_key(call.id, call.recording_format), *(keys.side_audio_key(call.id, side) for side in ("caller", "callee"))]
    inputs += [s.video_key for s in Segment.select().where(Segment.call_id == call.id) if s.video_key]
    total = 0
    for key in inputs:
        try:
            total += storage.size(key)
        except ObjectNotFound:
            continue
    return SPACE_FACTOR * total + SPACE_OVERHEAD


def _unless_no_space(exc: BaseException, workdir: Path) -> None:
    """Raise NoSpace when the disk is why ``exc`` happened: then it is not the call's input that failed."""
    failure = disk.as_no_space(exc, workdir)
    if failure is not None:
        raise failure from exc


@dataclass
class _Inputs:
    """What a render of the call is made of, fetched into the workdir."""

    recording: Path
    duration: float
    look: Presentation
    sides: dict[str, SideSpec]
    captions: transcripts.CallCaptions
    reasons: list[str] = field(default_factory=list)
    used: dict[str, list[str]] = field(default_factory=dict)  # side -> the segment video keys its panel shows


def _inputs(call: Call, settings: Settings, storage: Storage, workdir: Path) -> _Inputs:
    recording = workdir / "recording.mp3"
    try:
        storage.download_file(keys.recording_key(call.id, call.recording_format), recording)
    except ObjectNotFound:
        raise PermanentError(f"the recording {keys.recording_key(call.id, call.recording_format)} is missing") from None
    try:
        duration = call.audio_duration or probe_duration(recording, settings)
    except MediaError as exc:
        _unless_no_space(exc, workdir)
        raise PermanentError(f"the recording cannot be read: {exc}") from None

    reasons: list[str] = []
    used: dict[str, list[str]] = {}
    look = presentation_for(call, settings)
    sides = {
        side: _side_spec(call, side, look, settings, storage, workdir, recording, duration, reasons, used) for side in ("caller", "callee")
    }
    captions = transcripts.load(call, settings, storage, workdir, duration)
    return _Inputs(recording, duration, look, sides, captions, reasons, used)


def _spec(inputs: _Inputs, settings: Settings, workdir: Path, extra: dict[str, str]) -> RenderSpec:
    """The render of these inputs (the mix's loudness measured: an FFmpeg run, whose failure is a stitching failure)."""
    framing = replace(settings, video_layout=inputs.look.video_layout)  # the call's own layout, if it has one
    sides = inputs.sides
    spec = render_spec(framing, inputs.recording, inputs.duration, sides["caller"], sides["callee"], workdir, font=resolve_font(settings))
    spec = fit_labels(spec, settings)
    return _with_captions(spec, inputs.captions, extra)


def chunk_spec(call: Call, settings: Settings, storage: Storage, workdir: Path) -> RenderSpec:
    """The render a replica renders one chunk of (no sound: the coordinator renders it)."""
    inputs = _inputs(call, settings, storage, workdir)
    return _spec(inputs, replace(settings, audio_mix="recording"), workdir, {"call_id": call.id, "stage": "compositor"})


def segment_boundaries(call_id: str) -> list[float]:
    """Where the call's segments start and end, whatever became of them: the chunks' cuts move to them.

    From the rows the audio stage made, so the chunks planned while the call
    is still in generation (early renders) are the ones its compose plans.
    """
    return sorted({t for s in Segment.select(Segment.start, Segment.end).where(Segment.call_id == call_id) for t in (s.start, s.end)})


def early_spec(
    call: Call, settings: Settings, storage: Storage, workdir: Path, windows: Sequence[tuple[int, int]], jobs: Sequence[Any]
) -> RenderSpec:
    """The chunk render of a call still in generation, as far as it is known: for the early chunks of ``windows``.

    A side still generating is taken as generated with the segments done so
    far (only those shown in ``windows`` and its first one are fetched: a
    side with a video is never a local panel); a transcript still being made
    is the words of the speech-to-text ``jobs`` done so far. What this gets
    wrong (the panel shape, a side later failed, a cue that a later turn
    cuts short) gives the chunk another digest than the final spec's, and the
    coordinator renders it again (services/compositor/chunks.py).
    """
    settings = with_call_channel(call, settings)
    recording = workdir / "recording.mp3"
    storage.download_file(keys.recording_key(call.id, call.recording_format), recording)
    duration = float(call.audio_duration or 0.0)
    fps = settings.video_fps
    look = presentation_for(call, settings)
    sides: dict[str, SideSpec] = {}
    for side in ("caller", "callee"):
        stored = (Segment.state == SegmentState.COMPLETED) & Segment.video_key.is_null(False)
        done = list(Segment.select().where((Segment.call_id == call.id) & (Segment.side == side) & stored).order_by(Segment.index))
        if call.side_state(side) in COMPLETES or not done:
            sides[side] = _side_spec(call, side, look, settings, storage, workdir, recording, duration, [], {})
            continue
        shown = [s for n, s in enumerate(done) if n == 0 or any(s.start * fps < b + 1 and s.end * fps > a - 1 for a, b in windows)]
        avatar = _avatar(side, look.avatar(side), settings, storage, workdir)
        speech = _speech(call, side, settings, workdir, recording, duration)
        try:
            clips = _fetch_clips(side, shown, settings, storage, workdir)
        except _Fallback as exc:
            raise PermanentError(f"{side}: {exc}") from None
        sides[side] = SideSpec(side, look.name(side), avatar, clips=clips, speech=speech)
    captions = transcripts.heard(call, settings, jobs, duration) if jobs else transcripts.load(call, settings, storage, workdir, duration)
    inputs = _Inputs(recording, duration, look, sides, captions)
    return _spec(inputs, replace(settings, audio_mix="recording"), workdir, {"call_id": call.id, "stage": "generation"})


def _compose(call: Call, settings: Settings, storage: Storage, workdir: Path) -> Outcome:
    extra = {"call_id": call.id, "stage": "compositor"}
    inputs = _inputs(call, settings, storage, workdir)
    duration, sides, captions, reasons, used = inputs.duration, inputs.sides, inputs.captions, inputs.reasons, inputs.used
    output = workdir / "final.mp4"
    chunked = False
    try:
        # In the try: the mix's loudness measurement is an FFmpeg run too, and its failure a stitching failure.
        rendered = _render_chunked(call.id, inputs, output, settings, storage, workdir, extra)
        chunked = rendered is not None
        spec = rendered or _spec(inputs, settings, workdir, extra)
        try:
            if not chunked:
                _render(spec, output, duration, settings, extra)
        except FFmpegKilled:
            raise
        except (FFmpegError, MediaError) as exc:
            if spec.captions is None:
                raise
            _unless_no_space(exc, workdir)
            # Captions never fail a video: the same render without them.
            captions.fail(f"the render with captions failed, rendered without them: {exc}", extra)
            spec = replace(spec, captions=None)
            _render(spec, output, duration, settings, extra)
    except FFmpegKilled:
        raise  # killed from outside (the OOM killer): nothing is wrong with the call, the message is retried
    except (FFmpegError, MediaError) as exc:
        _unless_no_space(exc, workdir)
        log.error("stitching failed: %s", exc, extra=extra)
        chunks.forget(call.id, storage)  # chunks rendered early for a video that will not be made
        urls = side_video_urls(call.id, used, storage, workdir=workdir, settings=settings)
        status = VideoStatus.PARTIAL if any(urls.values()) else VideoStatus.FAILED
        return Outcome(status=status, side_urls=urls, reasons=[f"stitching failed: {exc}", *reasons])

    avatars = {side: spec.avatar for side, spec in sides.items()}
    poster_url = add_poster(call, settings, storage, workdir, output, avatars, resolve_font(settings), duration)  # never raises
    key = keys.video_key(call.id)
    storage.upload_file(output, key, content_type="video/mp4")
    if chunked:
        chunks.forget(call.id, storage)
    if spec.captions is not None:
        transcripts.publish(call.id, captions, storage, workdir)
    return Outcome(
        status=VideoStatus.PARTIAL if reasons else VideoStatus.COMPLETED,
        video_url=storage.object_url(key),
        side_urls=side_video_urls(call.id, used, storage),
        reasons=reasons,
        poster_url=poster_url,
        captions=captions.columns,
    )


def _with_captions(spec: RenderSpec, captions: transcripts.CallCaptions, extra: dict[str, str]) -> RenderSpec:
    """``spec`` showing the call's cues as its mode says; unchanged (and the reason kept) if their files cannot be written."""
    if not captions.turns or captions.mode == "off":
        return spec
    placement = spec.placement
    try:
        captions.cues = laid_out(captions.turns, spec.duration, placement)
        files = caption_files(
            captions.cues, captions.mode, placement, spec.workdir, font=spec.font, names=captions.names, width=line_width(placement)
        )
    except (OSError, ValueError) as exc:
        _unless_no_space(exc, spec.workdir)
        captions.fail(f"the captions could not be prepared: {exc}", extra)
        return spec
    return replace(spec, captions=files)


def _render_chunked(
    call_id: str, inputs: _Inputs, output: Path, settings: Settings, storage: Storage, workdir: Path, extra: dict[str, str]
) -> RenderSpec | None:
    """Render a long call in chunks across the replicas (:mod:`.chunks`): its spec; None: render it in one pass instead.

    The chunks are offered to the other replicas before the sound's loudness is
    measured (a pass over the whole call, which no chunk needs), so they start
    at once.
    """
    if not chunks.chunked(inputs.duration, settings):
        return None
    try:
        silent = _spec(inputs, replace(settings, audio_mix="recording"), workdir, extra)
        digests, windows = chunks.dispatch(call_id, silent, segment_boundaries(call_id), settings, storage, extra)
        sound = chunks.stored_sound(call_id, chunks.sound_digest(settings, inputs.recording), storage, workdir / "sound-stored.m4a")
        spec = silent if sound is not None else replace(silent, mix=plan_mix(settings, inputs.recording, AUDIO_RATE))
        chunks.coordinate(call_id, spec, digests, windows, output, settings, storage, extra, sound=sound)
        _check_output(output, spec.duration, settings)
    except FFmpegKilled:
        raise
    except (chunks.ChunkedFailed, FFmpegError, MediaError) as exc:
        _unless_no_space(exc, workdir)
        log.warning("chunked render failed, rendering in one pass: %s", exc, extra=extra)
        chunks.forget(call_id, storage)
        return None
    return spec


def _render(spec: RenderSpec, output: Path, duration: float, settings: Settings, extra: dict[str, str]) -> None:
    run_ffmpeg(
        build_command(spec, output, binary=settings.ffmpeg_binary),
        timeout=settings.compose_timeout,
        what="compose",
        total_seconds=duration,
        log_extra=extra,
    )
    _check_output(output, duration, settings)


# How far the rendered video's length may be from the call's before it counts as a failed stitch.
LENGTH_TOLERANCE = 1.0


def render_spec(
    settings: Settings,
    recording: Path,
    duration: float,
    caller: SideSpec,
    callee: SideSpec,
    workdir: Path,
    *,
    font: Path | None,
    turns: Sequence[Turn] = (),
    captions: str = "off",
    names: dict[str, str] | None = None,
) -> RenderSpec:
    """What the compositor renders for these two sides with these settings (the benchmark renders the same).

    With AUDIO_MIX=centered this measures the recording's loudness (one audio
    decode, :func:`.mix.measure`): the render applies it as one constant gain.
    A transcript's ``turns`` are shown as ``captions`` says (``burn``/``track``/``off``),
    their files written into ``workdir``; ``names`` open each side's lines of the track.
    """
    placement = render_layout(settings, caller, callee)
    cues = laid_out(turns, duration, placement) if turns and captions != "off" else []
    width, height = placement.panel("caller").w, placement.panel("caller").h
    return RenderSpec(
        recording=recording,
        duration=duration,
        caller=caller,
        callee=callee,
        workdir=workdir,
        width=width,
        height=height,
        fps=settings.video_fps,
        preset=settings.video_preset,
        crf=settings.video_crf,
        x264_params=settings.video_x264_params,
        font=font,
        mix=plan_mix(settings, recording, AUDIO_RATE),
        layout=placement,
        captions=caption_files(cues, captions, placement, workdir, font=font, names=names, width=line_width(placement)),
    )


def render_layout(settings: Settings, caller: SideSpec, callee: SideSpec) -> Layout:
    """The frame these two sides are rendered in: ``VIDEO_LAYOUT``, side-by-side's panels in the side videos' shape."""
    width, height = panel_size((caller, callee), settings.panel_width, settings.panel_height)
    return layout(settings.video_layout, panel=(width, height), resolution=settings.video_resolution)


def _check_output(path: Path, duration: float, settings: Settings) -> None:
    """FFmpeg said it succeeded; make sure the file has the picture and the sound, and the call's length."""
    video, _ = probe_rendered(path, settings)
    if abs(video.duration - duration) > LENGTH_TOLERANCE:
        raise MediaError(f"the rendered video is {video.duration:.1f} s long, the call {duration:.1f} s")


def _side_spec(
    call: Call,
    side: str,
    look: Presentation,
    settings: Settings,
    storage: Storage,
    workdir: Path,
    recording: Path,
    duration: float,
    reasons: list[str],
    used: dict[str, list[str]],
) -> SideSpec:
    state = call.side_state(side)
    label = look.name(side)
    avatar = _avatar(side, look.avatar(side), settings, storage, workdir)
    speech = _speech(call, side, settings, workdir, recording, duration)
    if state == SideState.GENERATED:
        try:
            clips, video_keys = _clips(call.id, side, settings, storage, workdir)
            used[side] = video_keys
            return SideSpec(side, label, avatar, clips=clips, speech=speech)
        except _Fallback as exc:
            reasons.append(f"{side} video unusable, local panel instead: {exc}")
    elif state == SideState.FAILED:
        reasons.append(f"{side} video generation failed: {getattr(call, f'{side}_error') or 'no reason recorded'}")
    elif state not in COMPLETES:
        reasons.append(f"{side} video was not generated (side state {state}), local panel instead")
    audio, channel = _side_audio(call.id, side, settings, storage, workdir, recording)
    return SideSpec(side, label, avatar, audio=audio, audio_channel=channel, speech=speech)


# Segment videos fetched and probed at once: each is an object-store GET and an ffprobe run, mostly waiting,
# and a speech-mode side of a 5-minute call has dozens of them (one after another: seconds before the render).
FETCH_THREADS = 4


def _clips(call_id: str, side: str, settings: Settings, storage: Storage, workdir: Path) -> tuple[tuple[Clip, ...], list[str]]:
    """The side's segment videos as clips on its timeline (a packed segment's as one clip per piece), and their keys."""
    segments = list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == side)).order_by(Segment.index))
    if not segments:
        raise _Fallback("no segments recorded")
    for segment in segments:  # before any download: one unfinished segment and the side is a local panel
        if segment.state != SegmentState.COMPLETED or not segment.video_key:
            raise _Fallback(f"segment {segment.index} is {segment.state}")
    return _fetch_clips(side, segments, settings, storage, workdir), [str(segment.video_key) for segment in segments]


def _fetch_clips(side: str, segments: Sequence[Segment], settings: Settings, storage: Storage, workdir: Path) -> tuple[Clip, ...]:
    """The segments' videos, fetched and probed (named by their segment: a chunk's command is the same whoever fetched them)."""

    def fetch(segment: Segment) -> list[Clip]:
        name, key = f"segment {segment.index}", str(segment.video_key)
        path = workdir / f"{side}-{segment.index:03d}.mp4"
        try:
            storage.download_file(key, path)
            info = probe_video(path, settings, accept=VIDEO)
        except ObjectNotFound:
            raise _Fallback(f"{name} video {key} is missing") from None
        except MediaError as exc:
            _unless_no_space(exc, workdir)
            raise _Fallback(f"{name} video is corrupt ({exc})") from None
        if not segment.pieces:
            return [Clip(path=path, start=segment.start, end=segment.end, info=info)]
        # Packed (#26): each piece of the video at its own time in the call; the idle avatar fills between.
        return packed_clips(path, info, segment.pieces)

    with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(segments))) as pool:
        return tuple(clip for fetched in pool.map(fetch, segments) for clip in fetched)  # in order; the first failing segment says why


def packed_clips(path: Path, info: VideoInfo, pieces: Sequence[Sequence[float]]) -> list[Clip]:
    """One clip per piece of a packed segment's video, read from the piece's offset.

    A video shorter than its audio (a model rounding its length down) has no
    frame to show from an offset past its last one: that piece is left out
    (the idle avatar shows there, as in every gap) rather than an empty input
    making the panel short. A piece that only runs past the end holds the last
    frame, as a contiguous clip does.
    """
    last = info.duration - 1 / (info.fps or 25) if info.duration > 0 else math.inf
    return [
        Clip(path=path, start=float(start), end=float(end), info=info, offset=float(offset))
        for start, end, offset in pieces
        if float(offset) == 0 or float(offset) < last - 0.001
    ]


def _side_audio(
    call_id: str, side: str, settings: Settings, storage: Storage, workdir: Path, recording: Path
) -> tuple[Path, int | None]:
    """The local panel's sound: the side's own file, or its channel of the recording."""
    path = workdir / f"{side}.mp3"
    try:
        storage.download_file(keys.side_audio_key(call_id, side), path)
        probe_duration(path, settings)
        return path, None
    except (ObjectNotFound, MediaError) as exc:
        _unless_no_space(exc, workdir)
        log.info("%s audio unusable (%s): using its channel of the recording", side, exc, extra={"call_id": call_id, "side": side})
    left_is_caller = settings.caller_channel == "left"
    return recording, 0 if (side == "caller") == left_is_caller else 1


def _speech(call: Call, side: str, settings: Settings, workdir: Path, recording: Path, duration: float) -> tuple[tuple[float, float], ...]:
    stored = getattr(call, f"{side}_speech")
    if stored is None:  # measured by the audio stage; older rows lack it
        left_is_caller = settings.caller_channel == "left"
        channel = 0 if (side == "caller") == left_is_caller else 1
        try:
            stored = detect_speech(recording, settings, channel=channel, duration=duration)
        except MediaError as exc:
            _unless_no_space(exc, workdir)
            log.warning("no speaker highlight for %s: %s", side, exc, extra={"call_id": call.id, "side": side})
            stored = []
    return tuple((float(s), float(e)) for s, e in stored)


def _avatar(side: str, configured: str, settings: Settings, storage: Storage, workdir: Path) -> Path | None:
    """The image the side's idle frames and local panel show: the call's or deployment's avatar, else the shipped one."""
    # A copy per side: the graph takes each file once, even when both sides use the same image.
    target = workdir / f"avatar-{side}"
    if configured:
        try:
            if is_stored_avatar(configured):  # checked when it was stored (shared/avatars.py)
                storage.download_file(configured, target)
            else:
                _fetch_image(configured, target)
            probe_video(target, settings, accept=IMAGE)
            return target
        except (OSError, httpx.HTTPError, MediaError, ValueError, ObjectNotFound) as exc:
            _unless_no_space(exc, workdir)
            log.warning("avatar %s unusable (%s): using the default", configured, exc, extra={"side": side})
    fallback = avatar_path(side)
    if not fallback.is_file():
        return None
    shutil.copyfile(fallback, target)
    return target


def _fetch_image(url: str, target: Path) -> None:
    """Copy the image at ``url`` (http(s), file:// or a path) to ``target``, at most AVATAR_MAX_BYTES."""
    if not url.startswith(("http://", "https://")):
        path = Path(url.removeprefix("file://"))
        if path.stat().st_size > AVATAR_MAX_BYTES:
            raise ValueError(f"larger than {AVATAR_MAX_BYTES} bytes")
        shutil.copyfile(path, target)
        return
    with httpx.stream("GET", url, timeout=30, follow_redirects=True) as response:
        response.raise_for_status()
        size = 0
        with target.open("wb") as out:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > AVATAR_MAX_BYTES:
                    raise ValueError(f"larger than {AVATAR_MAX_BYTES} bytes")
                out.write(chunk)


def side_video_urls(
    call_id: str, used: dict[str, list[str]], storage: Storage, *, workdir: Path | None = None, settings: Settings | None = None
) -> dict[str, str | None]:
    """URLs of each side's generated video, for the sides whose videos were usable.

    A side generated in one segment has its video already. Several segments
    are joined (without re-encoding, into ``videos/{callId}-{side}.mp4``) only
    when a ``workdir`` is given: the stitch-failure fallback, where these URLs
    are all the caller gets.
    """
    urls: dict[str, str | None] = {}
    for side in ("caller", "callee"):
        videos = used.get(side, [])
        if len(videos) == 1:
            urls[side] = storage.object_url(videos[0])
        elif len(videos) > 1 and workdir is not None and settings is not None:
            urls[side] = _join_segments(call_id, side, videos, storage, workdir, settings)
        else:
            urls[side] = None
    return urls


def _join_segments(call_id: str, side: str, videos: list[str], storage: Storage, workdir: Path, settings: Settings) -> str | None:
    listing = workdir / f"{side}-segments.txt"
    lines = []
    try:
        for index, key in enumerate(videos):
            path = workdir / f"{side}-join-{index:03d}.mp4"
            storage.download_file(key, path)
            if sniff(path) not in VIDEO:
                raise MediaError(f"{path.name}: not an MP4 video")
            # Our own listing of files we just checked; the listing may name nothing but files.
            lines.append(f"file '{file_url(path)}'")
        listing.write_text("\n".join(lines) + "\n")
        joined = workdir / f"{side}-joined.mp4"
        run_ffmpeg(
            [settings.ffmpeg_binary, "-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", file_url(listing)]
            + ["-c", "copy", "-movflags", "+faststart", "-y", str(joined)],
            timeout=settings.compose_timeout,
            what=f"join {side} segments",
            log_extra={"call_id": call_id, "side": side},
        )
        key = keys.side_video_key(call_id, side)
        storage.upload_file(joined, key, content_type="video/mp4")
        return storage.object_url(key)
    except (ObjectNotFound, FFmpegError, MediaError) as exc:
        _unless_no_space(exc, workdir)
        log.warning("could not join the %s segments: %s", side, exc, extra={"call_id": call_id, "side": side})
        return None
