"""Two webhooks, one call: ElevenLabs' audio and transcript, paired by conversation id.

ElevenLabs sends a conversation's ``post_call_audio`` (the recording, no
words) and ``post_call_transcription`` (the words, no recording) separately,
in either order, and may send either again. Neither alone makes a good call: a
mixed mono recording needs the transcript's turns to be split into the two
sides (services/audio/route.py does it in the audio stage), and the transcript
is the call's supplied transcript. So:

1. a half whose call exists already is a duplicate: answered, nothing stored;
2. otherwise it is stored durably: the audio in the object store
   (``pairs/<source>/<sha256 of the id>.<ext>``), then one upsert of the row
   ``(source, external_id)`` in ``callreel_pair_halves`` with the audio's key
   or the turns (a duplicate half overwrites its own column with the same thing);
3. the row is claimed only once it holds both (one ``DELETE … RETURNING``:
   of two requests completing the pair at once, one wins, the other sees the
   call or nothing), and the call is submitted (submission.py) with the audio
   as its recording and the turns as its supplied transcript.

A half alone past ``ELEVENLABS_PAIR_TIMEOUT`` is settled by :func:`expire`
(``callreel sweep`` calls it): an audio becomes a call without a transcript
(a stereo one goes through; a mono one fails in the audio stage with "mono
recording without a transcript to split it"), a transcript is dropped with a
warning (there is nothing to make a video of).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peewee import EXCLUDED

from shared.models import Call, VideoStatus, utcnow
from shared.pair_halves import PairHalf
from shared.settings import Settings
from shared.sniff import recording_format
from shared.storage import Storage, get_storage

from ..download import CONTENT_TYPES
from ..submission import Submission, SubmissionRefused, SubmitResult, submit
from .common import PlatformCall

__all__ = ["Waiting", "receive", "expire", "pair_key"]

log = logging.getLogger("callreel.ingest.platforms")


@dataclass(frozen=True)
class Waiting:
    """The half is stored; its call is made when the other half comes."""

    has: str  # "audio" | "transcript"


def pair_key(source: str, external_id: str, fmt: str) -> str:
    """Where a waiting audio is kept: a digest, so any id the platform sends is a safe key."""
    return f"pairs/{source}/{hashlib.sha256(external_id.encode()).hexdigest()[:40]}.{fmt}"


def _existing(source: str, external_id: str) -> SubmitResult | None:
    call = Call.get_or_none((Call.source == source) & (Call.external_id == external_id))
    if call is None:
        return None
    return SubmitResult(call_id=call.id, created=False, status=call.video_status or VideoStatus.PENDING, queued=False)


def _store_audio(source: str, call: PlatformCall, settings: Settings, storage: Storage) -> tuple[str, str]:
    audio = call.audio or b""
    if len(audio) > settings.recording_max_bytes:
        raise SubmissionRefused([f"the recording is {len(audio)} bytes, more than RECORDING_MAX_BYTES ({settings.recording_max_bytes})"])
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir, prefix=f"{source}-half-") as folder:
        path = Path(folder) / "audio"
        path.write_bytes(audio)
        fmt = recording_format(path)
        if fmt is None:
            raise SubmissionRefused(["the audio is not an audio file callreel reads: MP3, WAV, FLAC, Ogg or M4A"])
        key = pair_key(source, call.external_id, fmt)
        storage.upload_file(path, key, content_type=CONTENT_TYPES[fmt])
    return key, fmt


def _keep(source: str, external_id: str, columns: dict[Any, Any]) -> None:
    """Insert the half, or add it to the row its pair made (a duplicate rewrites the same value)."""
    now = utcnow()
    row = {PairHalf.source: source, PairHalf.external_id: external_id, PairHalf.created_at: now, PairHalf.updated_at: now, **columns}
    update = {field: getattr(EXCLUDED, field.name) for field in (*columns, PairHalf.updated_at)}
    PairHalf.insert(row).on_conflict(conflict_target=[PairHalf.source, PairHalf.external_id], update=update).execute()


def _claim(where: Any) -> list[PairHalf]:
    """Take the rows ``where`` selects out of the table: whoever deletes a row owns it."""
    return list(PairHalf.delete().where(where).returning(PairHalf).execute())


def _make(half: PairHalf, agent_channel: str, settings: Settings, storage: Storage) -> SubmitResult:
    """Submit the call of a claimed row. Should that fail for a passing reason, the row is put back and the error raised."""
    audio_key = str(half.audio_key)  # claimed with an audio: never None here
    try:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=settings.tmp_dir, prefix=f"{half.source}-pair-") as folder:
            path = Path(folder) / f"recording.{half.audio_format}"
            storage.download_file(audio_key, path)
            sub = Submission(
                source=half.source, external_id=half.external_id, recording_path=path, transcript=half.turns, agent_channel=agent_channel
            )
            result = submit(sub, settings=settings, storage=storage)
    except SubmissionRefused as exc:
        if half.turns and all(problem.startswith("transcript") for problem in exc.problems):
            # The words do not read, the audio does: the call is made from the audio alone rather than lost.
            log.warning("%s %s: its transcript is refused (%s); the call is made without it", half.source, half.external_id[:60], exc)
            half.turns = None
            return _make(half, agent_channel, settings, storage)
        storage.delete(audio_key)  # it can never become a call: nothing to keep
        raise
    except Exception:
        PairHalf.insert(
            {f: getattr(half, f.name) for f in PairHalf._meta.sorted_fields if f.name != "id"}
        ).on_conflict_ignore().execute()
        raise
    try:
        storage.delete(audio_key)
    except Exception:
        log.exception("could not delete %s (its call %s is made)", audio_key, result.call_id)
    return result


def receive(source: str, call: PlatformCall, settings: Settings, *, storage: Storage | None = None) -> SubmitResult | Waiting:
    """Keep one half; make the call when it completes the pair. Raises SubmissionRefused."""
    found = _existing(source, call.external_id)
    if found is not None:
        return found
    storage = storage or get_storage()
    if call.half == "audio":
        key, fmt = _store_audio(source, call, settings, storage)
        _keep(source, call.external_id, {PairHalf.audio_key: key, PairHalf.audio_format: fmt})
    else:
        _keep(source, call.external_id, {PairHalf.turns: call.turns})
    mine = (PairHalf.source == source) & (PairHalf.external_id == call.external_id)
    for half in _claim(mine & PairHalf.audio_key.is_null(False) & PairHalf.turns.is_null(False)):
        log.info("%s %s: both webhooks are here", source, call.external_id[:60])
        return _make(half, call.agent_channel, settings, storage)
    found = _existing(source, call.external_id)  # the other half's request made it meanwhile
    if found is not None:
        _claim(mine)  # this late duplicate's own half: the call has it already
        return found
    return Waiting(has=call.half or "")


def expire(
    settings: Settings, *, agent_channels: dict[str, str], now: dt.datetime | None = None, storage: Storage | None = None
) -> list[str]:
    """Settle every half older than ELEVENLABS_PAIR_TIMEOUT; one line each saying what became of it."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=settings.elevenlabs_pair_timeout)
    done: list[str] = []
    for half in _claim(PairHalf.created_at < cutoff):
        storage = storage or get_storage()  # only when there is something to settle
        what = f"{half.source} {half.external_id[:60]}"
        if _existing(half.source, half.external_id) is not None:
            if half.audio_key is not None:
                storage.delete(half.audio_key)
            done.append(f"{what}: a late duplicate of a call already made, removed")
        elif half.audio_key:
            half.turns = None  # (it has none: a complete pair is never left waiting)
            try:
                result = _make(half, agent_channels.get(half.source, "left"), settings, storage)
            except SubmissionRefused as exc:
                done.append(f"{what}: audio alone, refused: {exc}")
                continue
            waited = settings.elevenlabs_pair_timeout
            done.append(f"{what}: no transcript came in {waited} s; call {result.call_id} made from the audio alone")
        else:
            log.warning("%s: its transcript waited %d s for the audio, which never came: dropped", what, settings.elevenlabs_pair_timeout)
            done.append(f"{what}: transcript alone dropped (no audio came in {settings.elevenlabs_pair_timeout} s)")
    for line in done:
        log.info("pair timeout: %s", line)
    return done
