"""Objects put straight into a store, for tests that need them there before the code under test runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from shared.storage import Storage

__all__ = ["put"]


def put(store: Storage, key: str, data: bytes, content_type: str | None = None) -> None:
    """Store ``data`` under ``key`` through the store's own upload (every upload is from a file)."""
    with tempfile.TemporaryDirectory(prefix="put-") as folder:
        path = Path(folder) / "object"
        path.write_bytes(data)
        store.upload_file(path, key, content_type)
