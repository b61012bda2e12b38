"""Temp folders a killed worker left behind, removed when a worker starts.

A worker that is SIGKILLed (out of memory, a deploy that does not wait) never
reaches the ``finally`` that removes its call's temp folder, and on a
long-lived machine or volume those folders add up. Every stage's worker calls
:func:`clear_stage` as it starts (``shared.runtime.boot``), which removes that
stage's leftovers, by the prefix and time limit the pipeline table gives it
(``shared/pipeline.py``).

A folder's name says which process made it (``shared/owners.py``). One made
by a process of this host that is gone is removed at once: its message died
with it. Any other (another host's, or one without a tag) is removed only when
it has not changed for longer than a message of that stage may run (its
Dramatiq time limit): by then the message that made it is dead. Either way no
live worker's folder, in this process or in another sharing ``TMP_DIR``, is
ever touched.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from . import owners, pipeline
from .settings import Settings

__all__ = ["remove_stale", "clear_stage"]

log = logging.getLogger("callreel.janitor")


def remove_stale(tmp_dir: Path, prefix: str, older_than: float, *, now: float | None = None) -> list[Path]:
    """Remove the folders ``{prefix}-…`` in ``tmp_dir`` no process can be using; those removed.

    That is: made by a process of this host that is gone, or else unchanged for ``older_than`` seconds.
    """
    if not tmp_dir.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than
    removed = []
    for path in tmp_dir.glob(f"{prefix}-*"):
        try:
            if not path.is_dir() or path.is_symlink():
                continue
            owner = owners.owner_of(path)
            running = owners.alive(owner) if owner is not None else None
            if running or (running is None and path.stat().st_mtime > cutoff):
                continue
        except FileNotFoundError:  # another worker removed it first
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.warning("removed %d temp folder(s) left by a killed worker: %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def clear_stage(stage: str, settings: Settings) -> list[Path]:
    """Remove ``stage``'s temp folders that no message of the stage can still be using."""
    row = pipeline.row(stage)
    return remove_stale(settings.tmp_dir, row.tmp_prefix, row.time_limit(settings))
