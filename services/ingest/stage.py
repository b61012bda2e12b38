"""The ingest stage: a call's recording fetched into the object store, then handed to the audio stage.

A Twilio call's recording comes from Twilio with the account's credentials,
stored as ``recordings/{callId}.mp3``; a submitted call's (``POST /calls``, a
platform's webhook: services/ingest/submission.py) from the URL it was
submitted with, under RECORDING_URL_HOSTS' rules and with its own sealed
credential, stored under its real format's extension (``submitted.py``).

``download_recording`` is the entry the actor calls: one attempt in the
pipeline's skeleton (``shared.skeleton.run``), and the retry policy around it.

Retries use Dramatiq's own mechanism, never a sleep that holds a worker
thread: the actor decides and raises ``dramatiq.Retry(delay=ms)``, and the
Retries middleware re-enqueues the message with that delay (on RabbitMQ, the
delay queue). The policy:

- network errors, timeouts, truncated bodies, 5xx/429 and store or database
  hiccups: 3 retries, 1 s, 2 s then 4 s apart; the count travels in the
  message's own options (``download_failures``), so it survives redelivery;
- 404: normal right after the callback (Twilio has not published the file
  yet); retried while less than ``TWILIO_404_WINDOW`` seconds have passed since
  the callback, each wait about as long as the time already waited (1 s up
  to 15 s), so a recording that appears quickly is fetched quickly;
- 401/403, other 4xx, a recording over ``RECORDING_MAX_BYTES``, an empty or
  non-audio body: ``PermanentError`` (``shared.errors``) at once, no retry.

When the message fails for good, the call is marked ``failed`` with the
reason and any object left at ``recordings/{callId}.mp3`` from this stage is
deleted (only when the stage never finished: a stored recording whose
hand-on failed is kept).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared import keys, progress, skeleton
from shared.errors import EnvironmentFailure, PermanentError
from shared.models import Call, Source, Stage, utcnow
from shared.settings import Settings, SettingsError, get_settings
from shared.storage import Storage, get_storage

from . import download, submitted
from .validation import check_recording_url

__all__ = [
    "download_recording",
    "ingest_recording",
    "retry_when",
    "give_up",
    "RETRY_DELAYS_MS",
    "MAX_MESSAGE_RETRIES",
    "not_ready_delay_ms",
]

log = logging.getLogger("callreel.ingest")

#: Waits before the 1st, 2nd and 3rd retry after a transient failure.
RETRY_DELAYS_MS: tuple[int, ...] = (1000, 2000, 4000)
#: Bounds of the wait between two tries of a recording Twilio still answers 404 for.
NOT_READY_MIN_DELAY_MS = 1000
NOT_READY_MAX_DELAY_MS = 15000
#: A backstop far above any policy above, should a Retry loop ever misbehave.
MAX_MESSAGE_RETRIES = 200
FAILURES_OPTION = "download_failures"


def retry_when(retries: int, exception: BaseException) -> bool:
    """Dramatiq's ``retry_when``: the actor's own ``Retry`` decisions stand; anything else gets the usual budget."""
    if isinstance(exception, dramatiq.Retry):
        return retries < MAX_MESSAGE_RETRIES  # the actor already decided
    return retries < len(RETRY_DELAYS_MS)  # interrupted (time limit, shutdown): the usual budget


def download_recording(call_id: str) -> None:
    """One attempt, its failure turned into the retry policy's decision."""
    try:
        ingest_recording(call_id)
    except (PermanentError, dramatiq.Retry, EnvironmentFailure):
        raise  # an outage of the store or a full TMP_DIR: retried for STORAGE_OUTAGE_TOLERANCE (shared.outage)
    except download.RecordingNotReady as exc:
        raise _not_ready(call_id, exc) from None
    except Exception as exc:  # network, 5xx, truncated body, database hiccup
        if skeleton.environmental(exc) is not None:
            raise
        raise _failed_attempt(call_id, exc) from exc


def ingest_recording(call_id: str) -> None:
    """One attempt: begin, fetch (unless already stored), finish, hand on to the audio stage."""
    downloaded: list[int] = []  # this attempt's byte count: Twilio's copy goes only if ours matches it

    def work(call: Call) -> dict[str, Any]:
        if call.source in Source.SUBMITTED:
            with progress.timed(call.id, Stage.INGEST, "recording download and upload"):
                return submitted.fetch(call, get_settings(), get_storage())
        key = keys.recording_key(call.id)
        with progress.timed(call.id, Stage.INGEST, "recording download and upload"):
            downloaded.append(fetch(call, key, get_settings(), get_storage()))
        log.info("stored %s (%d bytes)", key, downloaded[0], extra={"call_id": call.id, "stage": Stage.INGEST})
        return {}

    def after_finish(call: Call, columns: Mapping[str, Any]) -> None:
        settings = get_settings()
        if settings.twilio_delete_recording and call.source not in Source.SUBMITTED:
            delete_at_twilio(call, keys.recording_key(call.id), downloaded[0], settings, get_storage())

    skeleton.run(Stage.INGEST, call_id, work, done=_stored, after_finish=after_finish)


def _stored(call: Call) -> bool:
    """A redelivery after the recording was stored: nothing to fetch again."""
    if call.ingest_finished_at and get_storage().exists(keys.recording_key(call.id, call.recording_format)):
        log.info("recording already stored; handing on", extra={"call_id": call.id, "stage": Stage.INGEST})
        return True
    return False


def _credentials(settings: Settings) -> tuple[str, str]:
    try:
        settings.require(["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"], "to download Twilio recordings")
    except SettingsError as exc:
        raise PermanentError("; ".join(exc.problems)) from None
    return settings.twilio_account_sid, settings.twilio_auth_token


def fetch(call: Call, key: str, settings: Settings, storage: Storage) -> int:
    """Stream the call's recording into ``key``; the URL is checked again before it is fetched."""
    account_sid, token = _credentials(settings)
    try:
        url = check_recording_url(
            call.recording_url or "",
            account_sid=account_sid,
            recording_sid=call.recording_sid or "",
            hosts=settings.twilio_recording_hosts,
        )
    except ValueError as exc:
        raise PermanentError(f"Refusing to download the recording: {exc}") from None
    return download.fetch_recording(
        download.media_url(url, settings.twilio_recording_format),
        key,
        storage=storage,
        auth=(account_sid, token),
        fmt=settings.twilio_recording_format,
        timeout=settings.download_timeout,
        max_bytes=settings.recording_max_bytes,
        spool_dir=settings.tmp_dir,
        call_id=call.id,
        hosts=settings.twilio_recording_hosts,
    )


def delete_at_twilio(call: Call, key: str, size: int, settings: Settings, storage: Storage) -> None:
    """Delete Twilio's copy, but only once ours is there whole."""
    if storage.size(key) != size:
        log.warning("stored size differs from the download; Twilio's copy is kept", extra={"call_id": call.id})
        return
    assert call.recording_url is not None, "the recording was downloaded from it"
    if download.delete_recording(
        call.recording_url, auth=_credentials(settings), timeout=settings.download_timeout, hosts=settings.twilio_recording_hosts
    ):
        log.info("deleted recording %s at Twilio", call.recording_sid, extra={"call_id": call.id, "stage": Stage.INGEST})


def _current_message() -> Any:
    return CurrentMessage.get_current_message()


def _failed_attempt(call_id: str, exc: Exception) -> Exception:
    """Retry after 1, 2, 4 s; after the third retry, give up with the last error as the reason."""
    message = _current_message()
    failures = 1
    if message is not None:
        failures = message.options.get(FAILURES_OPTION, 0) + 1
        message.options[FAILURES_OPTION] = failures
    reason = download.describe(exc)
    if failures > len(RETRY_DELAYS_MS):
        return PermanentError(f"Could not download the recording after {failures} attempts: {reason}")
    delay = RETRY_DELAYS_MS[failures - 1]
    log.warning("download attempt failed (%s); retrying in %.1fs", reason, delay / 1000, extra={"call_id": call_id, "stage": Stage.INGEST})
    return dramatiq.Retry(reason, delay=delay)


def not_ready_delay_ms(waited_s: float, window_s: float) -> int | None:
    """The wait before trying a 404 again, or None once the window has passed."""
    remaining = window_s - waited_s
    if remaining <= 0:
        return None
    delay = min(waited_s * 1000, NOT_READY_MAX_DELAY_MS, remaining * 1000)
    return int(max(delay, NOT_READY_MIN_DELAY_MS))


def _not_ready(call_id: str, exc: download.RecordingNotReady) -> Exception:
    window = get_settings().twilio_404_window
    call = Call.get_or_none(Call.id == call_id)
    since = call and (call.video_processing_started_at or call.created_at)
    waited = (utcnow() - since).total_seconds() if since else window
    delay = not_ready_delay_ms(waited, window)
    if delay is None:
        return PermanentError(
            f"Twilio still answered 404 Not Found for the recording {int(waited)} s after the callback "
            f"(TWILIO_404_WINDOW={window}); it may have been deleted."
        )
    log.info("recording not served yet (404); trying again in %.1fs", delay / 1000, extra={"call_id": call_id, "stage": Stage.INGEST})
    return dramatiq.Retry(str(exc), delay=delay)


def give_up(kwargs: dict[str, Any], exception: BaseException) -> None:
    """The message failed for good: fail the call with the reason, leave nothing half-stored."""
    try:
        call_id = keys.validate_call_id(kwargs.get("call_id"))
        key = keys.recording_key(call_id)
    except keys.InvalidCallId:
        return
    reason = download.describe(exception)
    progress.fail_call(call_id, reason)
    call = Call.get_or_none(Call.id == call_id)
    if call is not None and call.source in Source.SUBMITTED:
        submitted.forget_credential(call_id)
    if call is not None and call.ingest_finished_at is None:
        # A submitted recording's format is known only once fetched: any of its possible keys may be there.
        formats = keys.RECORDING_FORMATS if call.source in Source.SUBMITTED else (None,)
        for fmt in formats:
            key = keys.recording_key(call_id, fmt)
            try:
                get_storage().delete(key)
            except Exception:
                log.exception("could not delete %s", key, extra={"call_id": call_id})
