"""``POST /twilio/recording-status``: Twilio's recording status callback, the pipeline's front door.

Order of checks, each with its own answer:

1. the body is a small form (415, 413, 400),
2. the signature is Twilio's (403: a forged or unsigned request changes nothing),
3. every field is well formed (400, listing every problem): each sent once,
   no control character or surrounding blank in any field, each in the form
   Twilio gives it,
4. the recording belongs to the configured account (403),
5. the recording started less than ``WEBHOOK_MAX_AGE`` ago (400): a signed
   callback replayed days later, after its row was purged, would otherwise
   run the pipeline again.

Then the call is recorded with one atomic INSERT … ON CONFLICT, so the same
RecordingSid delivered twice (Twilio's retries, a replay) makes one call and
one job: the database's uniqueness decides, never a read followed by a write.
A ``calls`` row the host application made for this CallSid before the
recording existed is claimed by the same statement (only while it has no
recording yet).

Nothing slow happens here: Twilio waits 15 s at most. A completed dual-channel
recording is only recorded and handed to the ingest queue; the download runs
in the worker.
"""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import parse_qsl

import falcon
from peewee import IntegrityError

from shared import contracts, events
from shared.db import database
from shared.models import Call, Stage, VideoStatus, utcnow
from shared.settings import Settings

from .body import read_capped
from .enqueue import send_or_unavailable
from .signature import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, FormParams, SignatureCheck
from .validation import IGNORED_STATUSES, InvalidWebhook, RecordingStatus, parse_recording_status, single_values

__all__ = ["RecordingStatusResource", "claim_call", "read_form", "failure_reason", "MAX_BODY_BYTES"]

log = logging.getLogger("callreel.ingest.webhook")

#: Twilio's callbacks are a few hundred bytes; anything far larger is not Twilio.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 100
FORM_TYPE = "application/x-www-form-urlencoded"
SIGNATURE_HEADERS = (SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER)


def failure_reason(status: RecordingStatus) -> str | None:
    """Why this recording cannot become a video, in words a person understands; None when it can."""
    if status.status == "absent":
        return (
            "Twilio reported the recording as absent: no audio was recorded (the call may have been silent "
            "or ended before recording began), so there is nothing to make a video from."
        )
    if status.status == "failed":
        code = f" (Twilio error {status.error_code})" if status.error_code else ""
        return f"Twilio could not create the recording{code}, so there is nothing to make a video from."
    if status.channels != 2:
        return (
            "The recording has 1 channel (mono). callreel needs a dual-channel recording, caller on the left "
            "and callee on the right: record the call with recordingChannels=dual."
        )
    return None


class RecordingStatusResource:
    def __init__(self, settings: Settings) -> None:
        self.account_sid = settings.twilio_account_sid
        self.recording_hosts = settings.twilio_recording_hosts
        self.signature = SignatureCheck(settings)
        self.max_age = dt.timedelta(seconds=settings.webhook_max_age)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = read_form(req)
        if not self.signature.verify(req.path, req.query_string, params, {h: req.get_header(h) for h in SIGNATURE_HEADERS}):
            log.warning("refused a webhook with a missing or invalid Twilio signature from %s", req.remote_addr)
            raise falcon.HTTPForbidden(title="Invalid signature", description="X-Twilio-Signature does not match this request.")
        try:
            status = parse_recording_status(single_values(params), recording_hosts=self.recording_hosts)
        except InvalidWebhook as exc:
            log.warning("refused a malformed webhook: %s", exc)
            raise falcon.HTTPBadRequest(title="Invalid recording status callback", description=str(exc)) from None
        if status.account_sid != self.account_sid:
            log.warning("refused a webhook for account %s", status.account_sid, extra={"call_id": status.call_sid})
            raise falcon.HTTPForbidden(title="Wrong account", description="This recording belongs to another Twilio account.")
        self._refuse_stale(status)

        if status.status in IGNORED_STATUSES:
            self._answer(resp, status, "ignored", falcon.HTTP_200, f"RecordingStatus {status.status} needs no action")
            return
        reason = failure_reason(status)
        if not claim_call(status, reason):
            self._answer(resp, status, "duplicate", falcon.HTTP_200, "this call already has a recording")
            return
        if reason:
            self._answer(resp, status, "failed", falcon.HTTP_200, reason)
            return
        # The call is recorded as pending; the sweeper re-enqueues calls that never started.
        send_or_unavailable(
            contracts.DOWNLOAD_RECORDING,
            call_id=status.call_sid,
            title="Queue unavailable",
            description="The call is recorded but its download could not be queued yet.",
            retry_after=30,
        )
        self._answer(resp, status, "queued", falcon.HTTP_202, "recording download queued")

    def _refuse_stale(self, status: RecordingStatus) -> None:
        if status.start_time is None or status.start_time.tzinfo is None:
            return
        age = dt.datetime.now(dt.UTC) - status.start_time
        if age > self.max_age:
            log.warning("refused a webhook for a recording started %s ago", age, extra={"call_id": status.call_sid})
            raise falcon.HTTPBadRequest(
                title="Stale recording status callback",
                description=(
                    f"RecordingStartTime is older than WEBHOOK_MAX_AGE ({int(self.max_age.total_seconds())} s): a replay is not processed."
                ),
            )

    @staticmethod
    def _answer(resp: falcon.Response, status: RecordingStatus, result: str, code: str, detail: str) -> None:
        log.info("webhook %s %s: %s", status.recording_sid, result, detail, extra={"call_id": status.call_sid, "stage": Stage.INGEST})
        resp.status = code
        resp.media = {"call_id": status.call_sid, "recording_sid": status.recording_sid, "result": result, "detail": detail}


def read_form(req: falcon.Request) -> FormParams:
    """The POSTed fields, read with a size cap; every value kept, in order, for the signature."""
    if (req.content_type or "").split(";")[0].strip().lower() != FORM_TYPE:
        raise falcon.HTTPUnsupportedMediaType(description=f"Twilio callbacks are {FORM_TYPE}.")
    raw = read_capped(req, MAX_BODY_BYTES)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise falcon.HTTPBadRequest(title="Unreadable form", description=str(exc)[:200]) from None
    params = FormParams()
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def claim_call(status: RecordingStatus, failure: str | None) -> bool:
    """Record the call for this recording; False when another delivery (or recording) got there first.

    One statement: INSERT, or claim the host's row for this CallSid if it has no
    recording yet. Its row count says who won. The unique RecordingSid turns a
    second row for the same recording into an IntegrityError.
    """
    now = utcnow()
    values = {
        Call.recording_sid: status.recording_sid,
        Call.recording_url: status.recording_url,
        Call.account_sid: status.account_sid,
        Call.recording_duration: status.duration,
        Call.recording_channels: status.channels,
        Call.source: "twilio",
        Call.video_status: VideoStatus.FAILED if failure else VideoStatus.PENDING,
        Call.stage: Stage.DONE if failure else Stage.INGEST,
        Call.video_error_message: failure,
        # Processing starts when the recording is reported; the 404 window counts from here.
        Call.video_processing_started_at: now,
        Call.video_processing_completed_at: now if failure else None,
        Call.video_processing_duration: 0 if failure else None,
        Call.updated_at: now,
    }
    query = Call.insert({**values, Call.id: status.call_sid, Call.created_at: now}).on_conflict(
        conflict_target=[Call.id], update=values, where=Call.recording_sid.is_null()
    )
    try:
        with database.atomic():
            claimed = database.execute(query).rowcount == 1
    except IntegrityError:
        claimed = False
    if not claimed:
        log.info("recording %s already recorded", status.recording_sid, extra={"call_id": status.call_sid})
    else:
        events.record(
            status.call_sid, events.Kind.RECEIVED, stage=Stage.INGEST, recording_sid=status.recording_sid,
            channels=status.channels, duration=status.duration, refused=failure,
        )
    return claimed
