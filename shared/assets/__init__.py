"""Files the project ships: the default avatar image of each side."""

from __future__ import annotations

from pathlib import Path

__all__ = ["avatar_path"]

_HERE = Path(__file__).resolve().parent


def avatar_path(side: str) -> Path:
    """The shipped default avatar (512×512 PNG) of ``side`` (caller or callee)."""
    if side not in ("caller", "callee"):
        raise ValueError(f"invalid side {side!r}")
    return _HERE / f"{side}.png"
