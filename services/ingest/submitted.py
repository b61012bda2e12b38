"""The ingest stage's work for a submitted call (``POST /calls``, a platform's webhook): fetch its recording URL.

The URL was checked when it was submitted (submission.py) and is checked
again here against today's ``RECORDING_URL_HOSTS``: https only, an allowed
host, and every request (redirects too) refused when its host is not an exact
entry and resolves to a private, loopback or link-local address
(download.check_destination). The credential it was submitted with is unsealed
for this fetch only, sent as the ``Authorization`` header (httpx drops it on a
redirect to another origin), and cleared from the row once the recording is
stored or the call failed.

The body goes through download.download_to (the size cap, truncation, not an
error page), then its first bytes name its format: MP3, WAV, FLAC, Ogg or M4A
are stored as ``recordings/{callId}.{ext}``; anything else fails the call with
that reason. Channels and length are the audio stage's to check, as for Twilio's.
"""

from __future__ import annotations

import logging
from typing import Any

from shared import keys, pipeline
from shared.errors import PermanentError
from shared.models import Call, Stage, utcnow
from shared.sealing import SealError, unseal
from shared.settings import Settings
from shared.sniff import recording_format
from shared.storage import Storage

from . import download
from .validation import check_submitted_url, parse_host_list

__all__ = ["fetch", "forget_credential", "WHO", "SETTING"]

log = logging.getLogger("callreel.ingest")

WHO = "The recording server"
SETTING = "RECORDING_URL_HOSTS"


def fetch(call: Call, settings: Settings, storage: Storage) -> dict[str, Any]:
    """Download the call's recording URL into the store; the columns to record with the stage's end."""
    try:
        hosts = parse_host_list(settings.recording_hosts_for(call.source or ""))
        url = check_submitted_url(call.recording_url or "", hosts)
    except ValueError as exc:
        raise PermanentError(f"Refusing to download the recording: {exc}") from None
    try:
        authorization = unseal(call.recording_auth, settings.api_token) if call.recording_auth else None
    except SealError as exc:
        raise PermanentError(str(exc)) from None
    with pipeline.temp_folder(Stage.INGEST, call.id, settings.tmp_dir) as folder:
        path = folder / "recording"
        size = download.download_to(
            url,
            path,
            auth=None,
            authorization=authorization,
            timeout=settings.download_timeout,
            max_bytes=settings.recording_max_bytes,
            hosts=hosts.exact_entries(),
            who=WHO,
            setting=SETTING,
        )
        fmt = recording_format(path)
        if fmt is None:
            raise PermanentError("not an audio file: the recording URL served none of MP3, WAV, FLAC, Ogg or M4A")
        key = keys.recording_key(call.id, fmt)
        storage.upload_file(path, key, content_type=download.CONTENT_TYPES[fmt])
    log.info("stored %s (%d bytes)", key, size, extra={"call_id": call.id, "stage": Stage.INGEST})
    return {"recording_format": fmt, "recording_auth": None}


def forget_credential(call_id: str) -> None:
    """Clear a failed call's sealed credential: nothing will fetch with it again."""
    Call.update(recording_auth=None, updated_at=utcnow()).where(Call.id == call_id).execute()
