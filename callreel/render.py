"""``callreel render``: one recording in, one split-screen MP4 out, every stage in this process.

The recording enters the pipeline where Twilio's would after the download: it
is stored under ``recordings/{callId}.mp3`` and the audio stage is sent its
message. From there the same actors run as in production; this module only
watches the call's row and shows its progress.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from shared import keys, pipeline
from shared.models import STAGES, Call, Stage, VideoStatus, utcnow
from shared.settings import Settings
from shared.storage import get_storage

from .embedded import running_pipeline
from .errors import CliError

__all__ = ["render", "wait_for"]

POLL_SECONDS = 0.2


def _check_input(path: Path) -> None:
    if not path.exists():
        raise CliError(f"no such file: {path}")
    if not path.is_file():
        raise CliError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise CliError(f"{path} is empty (0 bytes): not an audio file")
    if not os.access(path, os.R_OK):
        raise CliError(f"cannot read {path}: permission denied")


def _check_output(path: Path) -> None:
    """Fail before any work if the video could not be written there."""
    if path.is_dir():
        raise CliError(f"output {path} is a directory: give a file name such as {path / 'call.mp4'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {path}: folder {parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".callreel-check-"):
            pass
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc


def render(recording: Path, output: Path, *, settings: Settings, quiet: bool = False) -> int:
    _check_input(recording)
    _check_output(output)
    with running_pipeline(settings):
        call_id = keys.new_call_id()
        get_storage().upload_file(recording, keys.recording_key(call_id), "audio/mpeg")
        now = utcnow()
        Call.create(
            id=call_id,
            source="local",
            recording_url=recording.resolve().as_uri(),
            stage=Stage.AUDIO,
            video_status=VideoStatus.PENDING,
            ingest_started_at=now,
            ingest_finished_at=now,
            video_processing_started_at=now,
        )
        pipeline.start(Stage.AUDIO, call_id)  # a local call has its recording: ingest is done
        call = wait_for(call_id, quiet=quiet)
        if call.video_status == VideoStatus.FAILED:
            raise CliError(f"{recording}: {call.video_error_message or 'the call failed'} (call {call_id})")
        if not get_storage().exists(keys.video_key(call_id)):
            # Stitching failed: the side videos are kept, the call can be retried.
            raise CliError(f"no video was made: {call.video_error_message} — `callreel retry {call_id}` tries again")
        get_storage().download_file(keys.video_key(call_id), output)
    note = f" (partial: {call.video_error_message})" if call.video_status == VideoStatus.PARTIAL else ""
    print(f"{output}: {call.video_status}{note} — call {call_id}, {call.video_processing_duration}s")
    return 0


def _elapsed(started, finished) -> str:
    if not started:
        return ""
    return f" {((finished or utcnow()) - started).total_seconds():.1f}s"


class Progress:
    """One updating line on a terminal; a log line per stage change otherwise."""

    def __init__(self, stream, quiet: bool) -> None:
        self.stream, self.quiet = stream, quiet
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.seen: dict[str, str] = {}
        self.tick = 0

    def _state(self, call: Call, stage: str) -> str:
        if getattr(call, f"{stage}_finished_at"):
            return "done"
        if getattr(call, f"{stage}_started_at") and call.stage == stage:
            return "running"
        return "waiting"

    def show(self, call: Call) -> None:
        if self.quiet:
            return
        if self.tty:
            self.tick += 1
            spinner = "|/-\\"[self.tick % 4]
            parts = []
            for stage in STAGES:
                state = self._state(call, stage)
                mark = {"done": "✓", "running": spinner, "waiting": "·"}[state]
                parts.append(f"{mark} {stage}{_elapsed(getattr(call, f'{stage}_started_at'), getattr(call, f'{stage}_finished_at')) if state != 'waiting' else ''}")
            self.stream.write("\r\033[K" + "  ".join(parts))
            self.stream.flush()
            return
        for stage in STAGES:
            state = self._state(call, stage)
            if self.seen.get(stage) != state and state != "waiting":
                self.seen[stage] = state
                timing = _elapsed(getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at"))
                self.stream.write(f"callreel: {stage} {'started' if state == 'running' else 'done in' + timing}\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def wait_for(call_id: str, *, quiet: bool = False, stream=None) -> Call:
    """Watch the call's row until it ends; return it."""
    progress = Progress(stream or sys.stderr, quiet)
    try:
        while True:
            call = Call.get_by_id(call_id)
            progress.show(call)
            if call.video_status in VideoStatus.TERMINAL and call.stage == Stage.DONE:
                return call
            time.sleep(POLL_SECONDS)
    finally:
        progress.close()
