"""What the audio stage does with one call: fetch, validate, split, measure, upload, cut.

Everything happens in a temp folder of the call's own under TMP_DIR, removed
in every outcome: success, a bad file, an FFmpeg failure, a timeout, and a
Dramatiq time limit interrupting the thread.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from shared import keys
from shared.ffmpeg import FFmpegTimeout as ProcessTimeout
from shared.models import SIDES, SideState, Stage
from shared.progress import PermanentError, timed
from shared.settings import Settings
from shared.storage import ObjectNotFound, Storage

from .probe import probe_recording
from .segments import cut_side, plan_side, record_segments
from .split import Split, SplitFailed, split_recording

__all__ = ["split_call", "workspace", "columns_of"]

log = logging.getLogger("callreel.audio")


@contextmanager
def workspace(call_id: str, settings: Settings) -> Iterator[Path]:
    """A fresh folder for this call's files, gone when the block ends however it ends."""
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"audio-{call_id}-", dir=settings.tmp_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fetch(call_id: str, target: Path, storage: Storage, settings: Settings) -> None:
    key = keys.recording_key(call_id)
    try:
        size = storage.size(key)
    except ObjectNotFound:
        raise PermanentError(f"recording is missing from storage ({key})") from None
    if size == 0:
        raise PermanentError("recording is empty (0 bytes)")
    if size > settings.recording_max_bytes:
        raise PermanentError(f"recording is {size} bytes, more than the {settings.recording_max_bytes} allowed (RECORDING_MAX_BYTES)")
    storage.download_file(key, target)


def columns_of(split: Split) -> dict[str, Any]:
    """The ``calls`` columns the stage records (see the pipeline contract)."""
    columns: dict[str, Any] = {"audio_duration": split.duration}
    for side in SIDES:
        audio = split.sides[side]
        columns[f"{side}_duration"] = audio.duration
        columns[f"{side}_speech"] = audio.speech
        columns[f"{side}_state"] = SideState.PENDING if audio.speech else SideState.SILENT
        columns[f"{side}_error"] = None
    return columns


def split_call(call_id: str, storage: Storage, settings: Settings) -> dict[str, Any]:
    """Do the stage's work for ``call_id``; return the columns to record on its row.

    Raises PermanentError for a bad recording, SplitFailed (retried) otherwise.
    """
    with workspace(call_id, settings) as folder:
        source = folder / "recording"
        with timed(call_id, Stage.AUDIO, "download"):
            _fetch(call_id, source, storage, settings)
        info = probe_recording(
            source, ffprobe=settings.ffprobe_binary, max_seconds=settings.recording_max_seconds, workdir=folder
        )
        log.info(
            "recording: %s/%s, %d Hz, %s s", info.format, info.codec, info.sample_rate,
            "?" if info.duration is None else f"{info.duration:.2f}", extra={"call_id": call_id, "stage": Stage.AUDIO},
        )
        try:
            with timed(call_id, Stage.AUDIO, "split"):
                split = split_recording(source, folder, info, settings)
        except ProcessTimeout as exc:
            raise SplitFailed(f"splitting took longer than SPLIT_TIMEOUT ({exc.timeout:g} s); ffmpeg was killed") from None
        source.unlink()  # the largest file here; not needed any more

        with timed(call_id, Stage.AUDIO, "upload"):
            for side in SIDES:
                storage.upload_file(split.sides[side].path, keys.side_audio_key(call_id, side), content_type="audio/mpeg")

        if settings.uses_fal:
            with timed(call_id, Stage.AUDIO, "segments"):
                for side in SIDES:
                    planned = plan_side(side, split.sides[side], folder, settings)
                    try:
                        cut_side(split.sides[side], planned, folder, settings)
                    except ProcessTimeout as exc:
                        raise SplitFailed(f"cutting segments took longer than SPLIT_TIMEOUT ({exc.timeout:g} s)") from None
                    record_segments(call_id, side, planned, storage)
        return columns_of(split)
