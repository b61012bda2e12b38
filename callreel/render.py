"""``callreel render``: one recording in, one split-screen MP4 out, every stage in this process.

The recording enters the pipeline where Twilio's would after the download: it
is stored under ``recordings/{callId}.mp3`` and the audio stage is sent its
message. From there the same actors run as in production; this module only
watches the call's row and shows its progress.

On a terminal a person watches: one line per stage (the compose with its
percentage, which the compositor's FFmpeg runner reports on a DEBUG logger this
module listens to), the workers' log in ``<data dir>/render.log`` instead of
across those lines, each error once, and a summary of the video at the end.
Elsewhere (a pipe, CI) the log stays on stderr with a plain line per stage change.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO

from shared import keys, pipeline
from shared.avatars import AvatarError, store_avatar
from shared.ffmpeg import FFmpegError, probe_duration, probe_video
from shared.logs import configure_logging
from shared.models import STAGES, Call, Stage, TranscriptStatus, VideoStatus, utcnow
from shared.settings import Settings
from shared.storage import get_storage
from shared.transcript import Transcript, TranscriptError, parse_transcript, speaker_names, to_json

from .embedded import running_pipeline
from .errors import CliError

__all__ = ["render", "wait_for", "Progress", "summary"]

POLL_SECONDS = 0.2
# services/compositor/runner.py's progress_log: named, not imported, so the
# compositor and the CLI know only a logger name of each other.
FFMPEG_PROGRESS_LOGGER = "callreel.compositor.ffmpeg.progress"
LOG_FILE = "render.log"


def _check_input(path: Path) -> None:
    if not path.exists():
        raise CliError(f"no such file: {path}")
    if not path.is_file():
        raise CliError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise CliError(f"{path} is empty (0 bytes): not an audio file")
    if not os.access(path, os.R_OK):
        raise CliError(f"cannot read {path}: permission denied")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _check_output(path: Path, recording: Path, transcript: Path | None) -> None:
    """Fail before any work if the video could not be written there, or would be written over an input."""
    if _same_file(path, recording):
        raise CliError(f"output {path} is the recording itself: give another file name (the video would overwrite it)")
    if transcript is not None and _same_file(path.with_suffix(".vtt"), transcript):
        raise CliError(
            f"output {path} would write its captions over the transcript {transcript}: give the video another name"
        )
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


def _store_avatars(call_id: str, avatars: dict[str, Path], settings: Settings) -> dict[str, str]:
    """Check and store each given avatar image; the call's columns that name them. Every problem fails before any work."""
    columns, problems = {}, []
    for side, path in avatars.items():
        try:
            columns[f"{side}_avatar_url"] = store_avatar(call_id, side, path.read_bytes(), settings, get_storage())
        except OSError as exc:
            problems.append(f"--{side}-avatar {path}: cannot read it ({exc.strerror or exc})")
        except AvatarError as exc:
            problems.append(f"--{side}-avatar {path}: {exc}")
    if problems:
        raise CliError("; ".join(problems))
    return columns


def _read_transcript(path: Path, recording: Path, settings: Settings, names: dict[str, str] | None = None) -> Transcript:
    """The transcript, checked against the recording's length before anything is stored; every problem named."""
    _check_input(path)
    try:
        duration = probe_duration(recording, settings)
    except FFmpegError as exc:
        raise CliError(f"{recording}: {exc}") from None
    try:
        return parse_transcript(
            path.read_bytes(),
            duration=duration,
            max_bytes=settings.transcript_max_bytes,
            # Speakers by the deployment's labels, or by this call's own names (--caller-name), as the API takes them.
            aliases={
                **speaker_names(settings.caller_label, settings.callee_label),
                **speaker_names((names or {}).get("caller_name", ""), (names or {}).get("callee_name", "")),
            },
        )
    except TranscriptError as exc:
        raise CliError(f"{path}: {exc}") from None


def _store_transcript(call_id: str, transcript: Transcript, settings: Settings) -> str:
    """Where the compositor reads it (``transcripts/{callId}.json``, :func:`shared.transcript.to_json`); its URL."""
    key = keys.transcript_key(call_id)
    path = settings.tmp_dir / f"{call_id}-transcript.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text(to_json(transcript), encoding="utf-8")
        get_storage().upload_file(path, key, "application/json")
    finally:
        path.unlink(missing_ok=True)
    return get_storage().object_url(key)


def render(
    recording: Path,
    output: Path,
    *,
    settings: Settings,
    quiet: bool = False,
    stream: IO[str] | None = None,
    transcript: Path | None = None,
    captions: str | None = None,
    presentation: dict[str, str] | None = None,
    avatars: dict[str, Path] | None = None,
) -> int:
    """Render ``recording`` into ``output``; with a ``transcript``, captions as ``captions`` says and ``output``'s .vtt beside it.

    ``presentation``: the call's own columns (names, layout); ``avatars``: its own images by side.
    """
    _check_input(recording)
    _check_output(output, recording, transcript)
    words = _read_transcript(transcript, recording, settings, presentation) if transcript is not None else None
    started = time.monotonic()
    stream = stream or sys.stderr
    watched = not quiet and _is_tty(stream)
    log_path = settings.data_dir / LOG_FILE
    call_id = keys.new_call_id()
    own = {**(presentation or {}), **_store_avatars(call_id, avatars or {}, settings)}
    with (_log_to(log_path, settings) if watched else nullcontext()) as log_stream, running_pipeline(settings, log_stream=log_stream):
        get_storage().upload_file(recording, keys.recording_key(call_id), "audio/mpeg")
        words_columns = {}
        if words is not None:
            words_columns = {"transcript_url": _store_transcript(call_id, words, settings), "transcript_status": TranscriptStatus.SUPPLIED}
        now = utcnow()
        Call.create(
            **own,
            id=call_id,
            source="local",
            recording_url=recording.resolve().as_uri(),
            stage=Stage.AUDIO,
            video_status=VideoStatus.PENDING,
            ingest_started_at=now,
            ingest_finished_at=now,
            video_processing_started_at=now,
            captions=captions,
            **words_columns,
        )
        pipeline.start(Stage.AUDIO, call_id)  # a local call has its recording: ingest is done
        call = wait_for(call_id, quiet=quiet, stream=stream)
        where = f" (log: {log_path})" if watched else ""
        if call.video_status == VideoStatus.FAILED:
            raise CliError(f"{recording}: {call.video_error_message or 'the call failed'} (call {call_id}){where}")
        if not get_storage().exists(keys.video_key(call_id)):
            # Stitching failed: the side videos are kept, the call can be retried.
            raise CliError(f"no video was made: {call.video_error_message} — `callreel retry {call_id}` tries again{where}")
        _save(keys.video_key(call_id), output)
        vtt = output.with_suffix(".vtt")
        if call.captions_url and get_storage().exists(keys.captions_key(call_id)):
            _save(keys.captions_key(call_id), vtt)
        elif words is not None:
            vtt.unlink(missing_ok=True)  # not an older render's captions beside this video
    print(summary(output, call, time.monotonic() - started, settings))
    if words is not None:
        print(f"{vtt}: captions" if vtt.exists() else f"no captions: {call.transcript_error or 'captions are off'}")
    return 0


def _save(key: str, path: Path) -> None:
    """Write the object ``key`` at ``path`` whole or not at all.

    It goes to a temp file beside ``path`` and is renamed into place once
    complete: a full disk or a kill halfway leaves no truncated video that
    looks whole (an MP4's header states the full length), and no earlier
    render at ``path`` is lost to a failed one.
    """
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        get_storage().download_file(key, temp)
        os.replace(temp, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        Path(temp).unlink(missing_ok=True)


def summary(output: Path, call: Call, seconds: float, settings: Settings) -> str:
    """``PATH: completed — 33.1 s of video, 1.9 MB, rendered in 4.6 s (call CA…)``."""
    note = f" (partial: {call.video_error_message})" if call.video_status == VideoStatus.PARTIAL else ""
    seconds_of_video = _video_length(output, settings)
    length = f"{_duration(seconds_of_video)} of video, " if seconds_of_video is not None else ""
    size = output.stat().st_size / 1_000_000
    return f"{output}: {call.video_status}{note} — {length}{size:.1f} MB, rendered in {_duration(seconds)} (call {call.id})"


def _video_length(path: Path, settings: Settings) -> float | None:
    """The video's length by ffprobe; None if it cannot tell (the summary then leaves it out)."""
    try:
        return probe_video(path, settings).duration
    except FFmpegError:
        return None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _is_tty(stream: IO[str]) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


@contextmanager
def _log_to(path: Path, settings: Settings) -> Iterator[IO[str]]:
    """A file for the log during the block (the workers' lines would break into the progress lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        try:
            yield handle
        finally:
            configure_logging(settings)  # back on stderr before the file closes


def _elapsed(started, finished) -> str:
    if not started:
        return ""
    return f" {((finished or utcnow()) - started).total_seconds():.1f}s"


def _ended(call: Call) -> bool:
    return call.video_status in VideoStatus.TERMINAL and call.stage == Stage.DONE


def _seconds(started, finished) -> float:
    return ((finished or utcnow()) - started).total_seconds() if started else 0.0


class _Percent(logging.Handler):
    """Keeps the last fraction done the compositor's FFmpeg reported for one call."""

    def __init__(self, call_id: str) -> None:
        super().__init__(logging.DEBUG)
        self.call_id = call_id
        self.fraction: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "call_id", None) == self.call_id and getattr(record, "what", None) == "compose":
            self.fraction = record.progress  # type: ignore[attr-defined]


@contextmanager
def _listening(call_id: str) -> Iterator[_Percent]:
    handler = _Percent(call_id)
    source = logging.getLogger(FFMPEG_PROGRESS_LOGGER)
    source.addHandler(handler)
    source.propagate = False  # the percentage is for the progress line, not the log
    source.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        source.removeHandler(handler)
        source.setLevel(logging.NOTSET)
        source.propagate = True


class Progress:
    """On a terminal, one line per stage, redrawn while it runs; a plain line per stage change otherwise."""

    SPINNER = "|/-\\"

    def __init__(self, stream: IO[str], quiet: bool, percent: _Percent | None = None) -> None:
        self.stream, self.quiet, self.percent = stream, quiet, percent
        self.tty = _is_tty(stream)
        self.seen: dict[str, str] = {}
        self.tick = 0
        self.next = 0  # on a terminal: the first stage whose line is not final yet
        self.drawn = False  # a line is on screen without its newline

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
            self._draw(call)
            return
        for stage in STAGES:
            state = self._state(call, stage)
            if self.seen.get(stage) != state and state != "waiting":
                self.seen[stage] = state
                timing = _elapsed(getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at"))
                self.stream.write(f"callreel: {stage} {'started' if state == 'running' else 'done in' + timing}\n")
                self.stream.flush()

    def _stages(self, call: Call) -> tuple[str, ...]:
        # A local file skips the download: its ingest is done before the watch begins.
        return tuple(s for s in STAGES if not (s == Stage.INGEST and call.source == "local"))

    def _last_reached(self, call: Call, stage: str) -> bool:
        later = STAGES[STAGES.index(stage) + 1 :]
        return not any(getattr(call, f"{s}_started_at") for s in later)

    def _line(self, call: Call, stage: str, final: bool) -> str:
        started, finished = getattr(call, f"{stage}_started_at"), getattr(call, f"{stage}_finished_at")
        seconds = f"{_seconds(started, finished):5.1f} s" if started else ""
        if final and _ended(call) and call.video_status != VideoStatus.COMPLETED and self._last_reached(call, stage):
            return f"  ✗ {stage:<11} {'':>4}  {seconds}  {call.video_status}"  # the reason follows, once
        if finished:
            return f"  ✓ {stage:<11} {'':>4}  {seconds}"
        if not started or call.stage != stage:
            return f"  · {stage:<11} {'':>4}  waiting"
        fraction = self.percent.fraction if self.percent is not None and stage == Stage.COMPOSITOR else None
        percent = f"{round(100 * fraction):3d}%" if fraction is not None else ""
        return f"  {self.SPINNER[self.tick % 4]} {stage:<11} {percent:>4}  {seconds}"

    def _draw(self, call: Call) -> None:
        self.tick += 1
        stages = self._stages(call)
        ended = _ended(call)
        while self.next < len(stages):
            stage = stages[self.next]
            started = getattr(call, f"{stage}_started_at")
            if getattr(call, f"{stage}_finished_at") or (ended and started):
                self._write(self._line(call, stage, final=True) + "\n")
            elif ended:  # a stage the call never reached: nothing to say about it
                if self.drawn:
                    self._write("")
            else:
                self._write(self._line(call, stage, final=False))
                return
            self.next += 1

    def _write(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.drawn = bool(text) and not text.endswith("\n")

    def close(self) -> None:
        if self.tty and not self.quiet and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def wait_for(call_id: str, *, quiet: bool = False, stream: IO[str] | None = None) -> Call:
    """Watch the call's row until it ends; return it."""
    with _listening(call_id) as percent:
        progress = Progress(stream or sys.stderr, quiet, percent)
        try:
            while True:
                call = Call.get_by_id(call_id)
                progress.show(call)
                if _ended(call):
                    return call
                time.sleep(POLL_SECONDS)
        finally:
            progress.close()
