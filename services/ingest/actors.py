"""The ingest worker: ``download_recording`` fetches a call's Twilio recording into the object store.

Run it with ``dramatiq services.ingest.actors --queues ingest``.

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
  non-audio body: ``PermanentError`` at once (``throws``), no retry.

When the message fails for good, the call is marked ``failed`` with the
reason and any object left at ``recordings/{callId}.mp3`` from this stage is
deleted (only when the stage never finished: a stored recording whose
hand-on failed is kept).
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared import janitor, keys, progress
from shared.contracts import DOWNLOAD_RECORDING, SPLIT_CHANNELS, actor, on_give_up, send
from shared.models import Call, Stage, utcnow
from shared.progress import PermanentError
from shared.runtime import boot
from shared.settings import Settings, SettingsError, get_settings
from shared.storage import Storage, get_storage

from . import download
from .validation import check_recording_url

__all__ = ["download_recording", "RETRY_DELAYS_MS", "not_ready_delay_ms"]

log = logging.getLogger("callreel.ingest")

broker = boot("ingest")
if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
    # The actor reads its own message's options to count failed attempts.
    broker.add_middleware(CurrentMessage())

#: Waits before the 1st, 2nd and 3rd retry after a transient failure.
RETRY_DELAYS_MS: tuple[int, ...] = (1000, 2000, 4000)
#: Bounds of the wait between two tries of a recording Twilio still answers 404 for.
NOT_READY_MIN_DELAY_MS = 1000
NOT_READY_MAX_DELAY_MS = 15000
#: A backstop far above any policy above, should a Retry loop ever misbehave.
MAX_MESSAGE_RETRIES = 200
FAILURES_OPTION = "download_failures"
#: A 500 MB recording over a slow link still fits; a stalled one is cut by DOWNLOAD_TIMEOUT long before.
TIME_LIMIT_MS = 30 * 60 * 1000

# Temp folders of downloads whose worker was killed: no message can still be using one older than the time limit.
janitor.remove_stale(get_settings().tmp_dir, download.SPOOL_PREFIX, TIME_LIMIT_MS / 1000)


def _retry_when(retries: int, exception: BaseException) -> bool:
    if isinstance(exception, dramatiq.Retry):
        return retries < MAX_MESSAGE_RETRIES  # the actor already decided
    return retries < len(RETRY_DELAYS_MS)  # interrupted (time limit, shutdown): the usual budget


@actor(
    DOWNLOAD_RECORDING,
    retry_when=_retry_when,
    throws=(PermanentError,),
    min_backoff=RETRY_DELAYS_MS[0],
    max_backoff=RETRY_DELAYS_MS[-1],
    time_limit=TIME_LIMIT_MS,
)
def download_recording(call_id: str) -> None:
    try:
        ingest_recording(call_id)
    except (PermanentError, dramatiq.Retry):
        raise
    except download.RecordingNotReady as exc:
        raise _not_ready(call_id, exc) from None
    except Exception as exc:  # network, 5xx, truncated body, store or database hiccup
        raise _failed_attempt(call_id, exc) from exc


def ingest_recording(call_id: str) -> None:
    """One attempt: begin, fetch (unless already stored), finish, hand on to the audio stage."""
    try:
        keys.validate_call_id(call_id)
    except keys.InvalidCallId as exc:
        raise PermanentError(str(exc)) from None
    call = progress.begin(call_id, Stage.INGEST)
    if call is None:
        return
    settings, storage, key = get_settings(), get_storage(), keys.recording_key(call_id)
    if call.ingest_finished_at and storage.exists(key):
        log.info("recording already stored; handing on", extra={"call_id": call_id, "stage": Stage.INGEST})
    else:
        with progress.timed(call_id, Stage.INGEST, "recording download"):
            size = fetch(call, key, settings, storage)
        log.info("stored %s (%d bytes)", key, size, extra={"call_id": call_id, "stage": Stage.INGEST})
        progress.finish(call_id, Stage.INGEST)
        if settings.twilio_delete_recording:
            delete_at_twilio(call, key, size, settings, storage)
    send(SPLIT_CHANNELS, call_id=call_id)
    progress.advance(call_id, Stage.INGEST, Stage.AUDIO)


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


@on_give_up(DOWNLOAD_RECORDING)
def download_failed(kwargs: dict[str, Any], exception: BaseException) -> None:
    """The message failed for good: fail the call with the reason, leave nothing half-stored."""
    call_id = kwargs.get("call_id")
    try:
        key = keys.recording_key(call_id)
    except keys.InvalidCallId:
        return
    reason = download.describe(exception)
    progress.fail_call(call_id, reason)
    call = Call.get_or_none(Call.id == call_id)
    if call is not None and call.ingest_finished_at is None:
        try:
            get_storage().delete(key)
        except Exception:
            log.exception("could not delete %s", key, extra={"call_id": call_id})
