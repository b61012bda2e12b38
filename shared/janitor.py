"""Temp folders a killed worker left behind, removed when a worker starts.

A worker that is SIGKILLed (out of memory, a deploy that does not wait) never
reaches the ``finally`` that removes its call's temp folder, and on a
long-lived machine or volume those folders add up. Each worker that makes
temp folders calls :func:`remove_stale` for its own prefix as it starts.

A folder is removed only when it has not changed for longer than a message of
that stage may run (its Dramatiq time limit): by then the message that made it
is dead, so no live worker's folder, in this process or in another sharing
``TMP_DIR``, is ever touched.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

__all__ = ["remove_stale"]

log = logging.getLogger("callreel.janitor")


def remove_stale(tmp_dir: Path, prefix: str, older_than: float, *, now: float | None = None) -> list[Path]:
    """Remove the folders ``{prefix}-…`` in ``tmp_dir`` unchanged for ``older_than`` seconds; those removed."""
    if not tmp_dir.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than
    removed = []
    for path in tmp_dir.glob(f"{prefix}-*"):
        try:
            if not path.is_dir() or path.is_symlink() or path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:  # another worker removed it first
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.warning("removed %d temp folder(s) left by a killed worker: %s", len(removed), ", ".join(p.name for p in removed))
    return removed
