"""What the audio stage does with one call: fetch, validate, split, measure, upload, cut.

``split_channels`` is the entry the actor calls: the pipeline's skeleton
(``shared.skeleton.run``) around :func:`split_call`. A call whose audio is
already done is not split again, and one that has moved on is skipped, so
RabbitMQ's at-least-once delivery never splits or hands on twice. Both sides,
silent ones too, are handed to generation, which records them and runs the
fan-in.

Everything happens in a temp folder of the call's own under TMP_DIR, removed
in every outcome: success, a bad file, an FFmpeg failure, a timeout, and a
Dramatiq time limit interrupting the thread.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from shared import disk, keys, pipeline, skeleton
from shared.channels import with_call_channel
from shared.errors import PermanentError
from shared.ffmpeg import FFmpegFailed, FFmpegTimeout
from shared.models import SIDES, Call, SideState, Source, Stage, TranscriptStatus
from shared.progress import timed
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, Storage, get_storage

from .probe import RecordingInfo, probe_recording
from .route import NO_TRANSCRIPT, route_mono
from .segments import cut_side, job_limit, plan_side, record_segments
from .split import Split, SplitFailed, split_recording

__all__ = ["split_channels", "split_call", "columns_of", "space_needed"]

log = logging.getLogger("callreel.audio")


def split_channels(call_id: str) -> None:
    """Split a call's recording per side, measure each side's speech, hand both sides to generation."""
    skeleton.run(Stage.AUDIO, call_id, _work, done=lambda call: call.audio_finished_at is not None)


def _work(call: Call) -> dict[str, Any]:
    # A submitted call may say which channel is the agent's, and its recording may be WAV, FLAC, Ogg or M4A.
    # A platform's mixed mono recording is routed by its supplied transcript, when it has one (route.py).
    mixed = call.source in Source.MIXED
    turns_key = keys.transcript_key(call.id) if mixed and call.transcript_status == TranscriptStatus.SUPPLIED else None
    settings = with_call_channel(call, get_settings())
    return split_call(call.id, get_storage(), settings, recording_format=call.recording_format, mixed=mixed, turns_key=turns_key)


def _turns(key: str, folder: Path, storage: Storage) -> list[tuple[str, float]]:
    """The supplied transcript's turns as (side, start): who speaks from when."""
    path = folder / "transcript.json"
    try:
        storage.download_file(key, path)
    except ObjectNotFound:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return []
    turns = data.get("turns") if isinstance(data, dict) else None
    found = []
    for item in turns if isinstance(turns, list) else []:
        if isinstance(item, dict) and isinstance(item.get("start"), (int, float)) and not isinstance(item.get("start"), bool):
            found.append((str(item.get("speaker")), float(item["start"])))
    return found


def _route(call_id: str, source: Path, info: RecordingInfo, turns_key: str | None, storage: Storage, settings: Settings) -> Path:
    """The mono mix as a stereo FLAC (route.py), stored as the call's recording for the stages after this one."""
    turns = _turns(turns_key, source.parent, storage) if turns_key else []
    if not turns:
        raise PermanentError(NO_TRANSCRIPT)
    target = source.parent / "routed.flac"
    try:
        with timed(call_id, Stage.AUDIO, "route"):
            route_mono(source, target, turns, info.sample_rate, settings)
    except FFmpegTimeout as exc:
        raise SplitFailed(f"routing the mono recording took longer than SPLIT_TIMEOUT ({exc.timeout:g} s); ffmpeg was killed") from None
    except FFmpegFailed as exc:
        raise PermanentError(f"the mono recording cannot be decoded: {exc.detail[-300:]}") from None
    storage.upload_file(target, keys.recording_key(call_id, "flac"), content_type="audio/flac")
    log.info("mono recording routed to two channels by %d turns", len(turns), extra={"call_id": call_id, "stage": Stage.AUDIO})
    source.unlink()
    return target


def _fetch(call_id: str, target: Path, storage: Storage, settings: Settings, fmt: str | None = None) -> None:
    key = keys.recording_key(call_id, fmt)
    try:
        size = storage.size(key)
    except ObjectNotFound:
        raise PermanentError(f"recording is missing from storage ({key})") from None
    if size == 0:
        raise PermanentError("recording is empty (0 bytes)")
    if size > settings.recording_max_bytes:
        raise PermanentError(f"recording is {size} bytes, more than the {settings.recording_max_bytes} allowed (RECORDING_MAX_BYTES)")
    disk.ensure_free(target.parent, space_needed(size))
    storage.download_file(key, target)


#: The recording, its two sides and their segments, against the recording's size: a generous multiple.
SPACE_FACTOR = 3
#: Logs and the small files of a split.
SPACE_OVERHEAD = 10 * 1024 * 1024


def space_needed(recording_bytes: int) -> int:
    """About the bytes a split of a recording this size writes under TMP_DIR (a WAV's sides are MP3s: smaller)."""
    return SPACE_FACTOR * recording_bytes + SPACE_OVERHEAD


def columns_of(split: Split) -> dict[str, Any]:
    """The ``calls`` columns the stage records (see the pipeline contract)."""
    columns: dict[str, Any] = {"audio_duration": split.duration}
    for side in SIDES:
        audio = split.sides[side]
        columns[f"{side}_duration"] = audio.duration
        columns[f"{side}_speech"] = audio.speech
        columns[f"{side}_state"] = SideState.PENDING if audio.speech else SideState.SILENT
        columns[f"{side}_error"] = None
    # Neither side speaks: the video will show two still images and no word; the call says so.
    columns["no_speech"] = not any(split.sides[side].speech for side in SIDES)
    return columns


def check_call_length(seconds: float | None, settings: Settings) -> None:
    """The cost guard (#26): a call longer than MAX_CALL_SECONDS fails here, before anything is sent to fal.ai."""
    if settings.max_call_seconds and seconds is not None and seconds > settings.max_call_seconds:
        raise PermanentError(
            f"the call lasts {seconds:.0f} s, longer than MAX_CALL_SECONDS ({settings.max_call_seconds} s): "
            "not sent to fal.ai (a cost guard; raise MAX_CALL_SECONDS to render such calls)"
        )


def split_call(
    call_id: str,
    storage: Storage,
    settings: Settings,
    *,
    recording_format: str | None = None,
    mixed: bool = False,
    turns_key: str | None = None,
) -> dict[str, Any]:
    """Do the stage's work for ``call_id``; return the columns to record on its row.

    ``recording_format``: the call's (``recordings/{callId}.{ext}``); None for Twilio's mp3.
    ``mixed``: a mono recording is routed to two channels by the transcript at
    ``turns_key`` (and fails the call without one); the routed stereo FLAC
    becomes the call's recording (``recording_format`` flac).

    Raises PermanentError for a bad recording, SplitFailed (retried) otherwise.
    """
    with pipeline.temp_folder(Stage.AUDIO, call_id, settings.tmp_dir) as folder:
        source = folder / "recording"
        with timed(call_id, Stage.AUDIO, "download"):
            _fetch(call_id, source, storage, settings, recording_format)
        info = probe_recording(
            source, ffprobe=settings.ffprobe_binary, max_seconds=settings.recording_max_seconds, workdir=folder, mono_ok=mixed
        )
        check_call_length(info.duration, settings)
        routed: dict[str, Any] = {}
        if info.channels == 1:
            source = _route(call_id, source, info, turns_key, storage, settings)
            info = probe_recording(source, ffprobe=settings.ffprobe_binary, max_seconds=settings.recording_max_seconds, workdir=folder)
            routed["recording_format"] = "flac"
        log.info(
            "recording: %s/%s, %d Hz, %s s", info.format, info.codec, info.sample_rate,
            "?" if info.duration is None else f"{info.duration:.2f}", extra={"call_id": call_id, "stage": Stage.AUDIO},
        )
        try:
            with timed(call_id, Stage.AUDIO, "split"):
                split = split_recording(source, folder, info, settings)
        except FFmpegTimeout as exc:
            raise SplitFailed(f"splitting took longer than SPLIT_TIMEOUT ({exc.timeout:g} s); ffmpeg was killed") from None
        source.unlink()  # the largest file here; not needed any more
        check_call_length(split.duration, settings)

        with timed(call_id, Stage.AUDIO, "upload"):
            for side in SIDES:
                storage.upload_file(split.sides[side].path, keys.side_audio_key(call_id, side), content_type="audio/mpeg")

        if settings.uses_fal:
            with timed(call_id, Stage.AUDIO, "segments"):
                limit = job_limit(settings, split.duration, [[(a, b) for a, b in split.sides[side].speech] for side in SIDES])
                for side in SIDES:
                    planned = plan_side(side, split.sides[side], folder, settings, max_seconds=limit)
                    try:
                        cut_side(split.sides[side], planned, folder, settings)
                    except FFmpegTimeout as exc:
                        raise SplitFailed(f"cutting segments took longer than SPLIT_TIMEOUT ({exc.timeout:g} s)") from None
                    record_segments(call_id, side, planned, storage)
        return {**columns_of(split), **routed}
