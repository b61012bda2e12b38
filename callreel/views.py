"""Read-only views of calls for the command line (``shared.callview`` and ``shared.calls``, as the status API and operator page)."""

from __future__ import annotations

from typing import Any

from shared.calls import newest_calls
from shared.callview import as_json, call_view
from shared.keys import validate_call_id
from shared.models import Call
from shared.storage import get_storage

from .errors import CliError

__all__ = ["call_summary", "list_calls"]


def call_summary(call_id: str) -> dict[str, Any]:
    """The status API's view of the call (``shared.callview``), with the store's own URLs for its videos."""
    call = Call.get_or_none(Call.id == validate_call_id(call_id))
    if call is None:
        raise CliError(f"no call {call_id}")
    return as_json(call_view(call, _store_url))


def _store_url(key: str) -> str:
    # Presigned on S3 (as the API gives them), a file:// URL for a local folder; the store is only built for a video.
    return get_storage().presigned_url(key)


def list_calls(status: str | None = None, limit: int = 50) -> list[Call]:
    return newest_calls(status=status, limit=max(1, min(limit, 1000)))
