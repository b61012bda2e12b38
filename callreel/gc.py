"""``callreel gc``: delete from the local object store what finished calls no longer need.

Embedded mode (``callreel render``, ``callreel serve`` without S3) keeps every
call's objects in ``<CALLREEL_DATA_DIR>/objects``: the recording, each side's
audio and segments, the side and segment videos, and the final video that
``render`` also copied to its output. Nothing removes them by itself. A
completed call needs only what its status still links to (the final video,
its poster, transcript and captions); ``--outputs`` removes those too. A
failed or partial call keeps everything (``callreel retry`` starts again from
its stored inputs), as does a call still running. Shared avatars
(``avatars/{side}-{digest}.png``) belong to no call and stay.

On S3 the bucket's lifecycle rules do this job (docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared import keys
from shared.models import Call, Stage, VideoStatus
from shared.storage import LocalStorage, get_storage

from .errors import CliError

__all__ = ["Collected", "collect"]


@dataclass
class Collected:
    calls: int = 0
    files: list[Path] = field(default_factory=list)
    size: int = 0


def _outputs(call_id: str) -> set[str]:
    return {keys.video_key(call_id), keys.poster_key(call_id), keys.transcript_key(call_id), keys.captions_key(call_id)}


def collect(*, outputs: bool = False, dry_run: bool = False) -> Collected:
    """Remove (or, ``dry_run``, list) the objects of completed calls they no longer need."""
    store = get_storage()
    if not isinstance(store, LocalStorage):
        raise CliError("callreel gc clears embedded mode's local object folder; on S3, expire objects with a lifecycle rule")
    by_call: dict[str, list[Path]] = {}
    for path in store.root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            call_id = path.name[:34]  # every per-call key starts with the call id (shared/keys.py)
            if keys.CALL_ID_RE.match(call_id):
                by_call.setdefault(call_id, []).append(path)
    done = Collected()
    # Ended for good: a re-render in progress keeps its completed status while it reads its inputs again.
    finished = (Call.video_status == VideoStatus.COMPLETED) & (Call.stage == Stage.DONE) & (Call.rerender.is_null() | ~Call.rerender)
    completed = Call.select(Call.id).where(Call.id.in_(list(by_call)) & finished) if by_call else []
    for call in completed:
        keep = set() if outputs else _outputs(call.id)
        removable = [p for p in by_call[call.id] if str(p.relative_to(store.root)) not in keep]
        if removable:
            done.calls += 1
        for path in removable:
            done.size += path.stat().st_size
            done.files.append(path)
            if not dry_run:
                path.unlink(missing_ok=True)
    return done
