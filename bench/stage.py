"""One pipeline stage, run for real in a process of its own: ``python -m bench.stage STAGE PARAMS REPORT``.

The process is configured the way a deployed worker is (environment
variables, read by ``shared.settings``), imports that worker's actors module
(so its memory is the worker's, dependencies and all) and calls the actor
itself, synchronously: the same code a Dramatiq worker runs for the message,
database updates, object-store transfers and FFmpeg included. The process
first builds its object-store client, as a deployed worker has since its
first message (counted in every stage, that once-per-worker cost was a
visible part of each call: docs/benchmarks.md, section "The benchmark's own
costs"). Only the work is timed and counted as CPU time; peak RSS is the
process's whole peak, start-up included, since a worker carries its imports
all its life. The figures go to REPORT as JSON (see ``bench.measure``).

Stages: ``download`` (ingest worker: Twilio → S3), ``split`` (audio worker:
S3 → split, measure, cut segments → S3), ``compose`` (compositor worker:
S3 → render → S3), ``upload`` (the final video alone, into S3).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench.measure import ChildPeaks, self_usage, write_report
from shared.storage import get_storage

__all__ = ["main", "STAGES"]


class _Durations(logging.Handler):
    """Collects the durations the services log (``progress.timed``, the FFmpeg runner)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.found: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        duration = getattr(record, "duration", None)
        if isinstance(duration, (int, float)):
            message = record.getMessage()
            what = message.split(" done in ")[0].split(" failed after ")[0]
            if " finished in " in message:  # the FFmpeg runner's line, beside progress.timed's for the same step
                what = message.split(" finished in ")[0] + " (ffmpeg)"
            self.found[what] = self.found.get(what, 0.0) + float(duration)


def _download(params: dict[str, Any]) -> tuple[Callable[[], None], Callable[[], tuple[int, dict]]]:
    from services.ingest.actors import download_recording
    from shared import keys
    from shared.models import Call, Stage
    from shared.storage import get_storage

    call_id = params["call_id"]

    def work() -> None:
        download_recording(call_id)

    def check() -> tuple[int, dict]:
        call = Call.get_by_id(call_id)
        if call.stage != Stage.AUDIO:
            raise RuntimeError(f"download did not hand on: stage {call.stage}, error {call.video_error_message}")
        return get_storage().size(keys.recording_key(call_id)), {}

    return work, check


def _split(params: dict[str, Any]) -> tuple[Callable[[], None], Callable[[], tuple[int, dict]]]:
    from services.audio.actors import split_channels
    from shared import keys
    from shared.models import Call, Segment, Stage
    from shared.storage import get_storage

    call_id = params["call_id"]

    def work() -> None:
        split_channels(call_id)

    def check() -> tuple[int, dict]:
        call = Call.get_by_id(call_id)
        if call.stage != Stage.GENERATION:
            raise RuntimeError(f"split did not hand on: stage {call.stage}, error {call.video_error_message}")
        storage = get_storage()
        size = sum(storage.size(keys.side_audio_key(call_id, side)) for side in ("caller", "callee"))
        segments = Segment.select().where(Segment.call_id == call_id).count()
        return size, {"segments": segments}

    return work, check


def _compose(params: dict[str, Any]) -> tuple[Callable[[], None], Callable[[], tuple[int, dict]]]:
    from services.compositor.actors import compose
    from shared import keys
    from shared.models import Call, VideoStatus
    from shared.storage import get_storage

    call_id = params["call_id"]

    def work() -> None:
        compose(call_id)

    def check() -> tuple[int, dict]:
        call = Call.get_by_id(call_id)
        if call.video_status != VideoStatus.COMPLETED:
            raise RuntimeError(f"compose ended {call.video_status}: {call.video_error_message}")
        return get_storage().size(keys.video_key(call_id)), {}

    return work, check


def _upload(params: dict[str, Any]) -> tuple[Callable[[], None], Callable[[], tuple[int, dict]]]:
    importlib.import_module("services.compositor.actors")  # the process that uploads is the compositor's
    from shared.storage import get_storage

    path, key = Path(params["path"]), params["key"]

    def work() -> None:
        get_storage().upload_file(path, key, content_type="video/mp4")

    def check() -> tuple[int, dict]:
        return get_storage().size(key), {}

    return work, check


STAGES = {"download": _download, "split": _split, "compose": _compose, "upload": _upload}


def main(argv: list[str]) -> None:
    stage, params, report = argv[0], json.loads(argv[1]), Path(argv[2])
    work, check = STAGES[stage](params)
    get_storage()
    durations = _Durations()
    logging.getLogger().addHandler(durations)
    before, _ = self_usage()
    started = time.monotonic()
    with ChildPeaks() as children:
        work()
    wall = time.monotonic() - started
    worker, ffmpeg = self_usage()  # before check(): its queries are not the stage's
    worker.cpu -= before.cpu  # the work's CPU, not the interpreter's start-up; RSS stays the peak
    ffmpeg.rss = children.peak
    output_bytes, extra = check()
    write_report(report, wall, worker, ffmpeg, output_bytes, {**extra, **durations.found})


if __name__ == "__main__":
    main(sys.argv[1:])
