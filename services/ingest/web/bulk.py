"""Bulk actions on the call list: retry, re-render or delete the media of many calls, each confirmed first.

The list's checkboxes (or "all matching this filter") post to ``POST /ops/bulk``,
which changes nothing: it shows, call by call, what the action would do or
why it cannot (:func:`why_not`), and a form with the calls it can act on. That
form posts to ``POST /ops/bulk/run``, which acts and records each call's
action in its history with the operator (shared/events.py). Both forms carry
the session's CSRF token; each call is checked again when acted on, since it
may have moved between the two.

- retry: ``shared.retry.retry_call``; not offered where it cannot help: a
  mono recording, a recording Twilio no longer has (404 past
  ``TWILIO_404_WINDOW``), one longer than ``RECORDING_MAX_SECONDS``, or a call
  that has not failed.
- re-render: compose a finished (completed or partial) call again from its
  stored inputs (the compositor's ``rerender``), e.g. after a layout or
  caption change.
- delete media: delete the call's videos and poster from the store and
  clear their URLs (the recording, audio and transcript stay).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import dramatiq
import falcon

from shared import contracts, events, keys
from shared.calls import newest_calls
from shared.models import SIDES, Call, Segment, TranscriptStatus, VideoStatus, utcnow
from shared.retry import RetryError, retry_call
from shared.settings import Settings
from shared.storage import Storage

from ..body import read_capped
from .auth import SESSION
from .listing import InvalidQuery, parse_list_query
from .live import in_flight
from .session import Session, SessionSigner
from .templating import Markup, escape, join

__all__ = ["ACTIONS", "BULK_MAX", "why_not", "add_bulk_routes"]

log = logging.getLogger("callreel.ingest.bulk")

BULK_MAX = 500  # calls one action takes; "all matching" beyond that is refused with a count
FORM_MAX_BYTES = 64 * 1024
ACTIONS = {"retry": "Retry", "rerender": "Re-render", "delete_media": "Delete media"}


def read_form(req: falcon.Request) -> dict[str, list[str]]:
    """A urlencoded form whose fields may repeat (``id=…&id=…``), capped in size and fields."""
    if (req.content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise falcon.HTTPUnsupportedMediaType(description="Send the form as application/x-www-form-urlencoded.")
    raw = read_capped(req, FORM_MAX_BYTES, what="The form")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=BULK_MAX + 20)
    except (UnicodeDecodeError, ValueError):
        raise falcon.HTTPBadRequest(title="Unreadable form", description=f"At most {BULK_MAX} calls at once.") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def why_not(action: str, call: Call, settings: Settings) -> str | None:
    """Why ``action`` cannot help ``call`` (what the page says), or None when it can be done."""
    if in_flight(call):
        return f"still running ({call.video_status} at {call.stage}): wait for it to end"
    error = (call.video_error_message or "").lower()
    if action == "retry":
        if call.video_status not in (VideoStatus.FAILED, VideoStatus.PARTIAL) and call.transcript_status != TranscriptStatus.FAILED:
            return f"it is {call.video_status}: only failed or partial calls are retried (re-render composes a finished one again)"
        if call.recording_channels == 1 or "recording is mono" in error:
            return "the recording is mono: a retry fails the same way (enable dual-channel recording in Twilio)"
        if "404 not found" in error:
            return "Twilio no longer has the recording (404 past TWILIO_404_WINDOW): there is nothing to download again"
        if call.recording_duration and call.recording_duration > settings.recording_max_seconds:
            return f"the recording is longer than RECORDING_MAX_SECONDS ({call.recording_duration} s > {settings.recording_max_seconds} s)"
        return None
    if action == "rerender":
        if call.video_status not in (VideoStatus.COMPLETED, VideoStatus.PARTIAL):
            return f"it is {call.video_status}: only a finished video is composed again (retry a failed call)"
        if not (call.caller_video_url or call.callee_video_url or call.video_url):
            return "its media was deleted: nothing to compose from"
        return None
    if action == "delete_media":
        if not (call.video_url or call.poster_url or call.caller_video_url or call.callee_video_url):
            return "it has no media left"
        return None
    return "unknown action"


@dataclass
class Outcome:
    call_id: str
    done: bool
    text: str


def _rerender(call: Call) -> str:
    contracts.send(contracts.COMPOSE, call_id=call.id, rerender=True)
    return "re-render sent"


def _delete_media(call: Call, storage: Storage) -> str:
    """The call's videos and poster out of the store, then their URLs out of the row (a failed delete leaves the URL)."""
    objects = [keys.video_key(call.id), keys.poster_key(call.id), *(keys.side_video_key(call.id, side) for side in SIDES)]
    objects += [
        keys.segment_video_key(call.id, s.side, s.index)
        for s in Segment.select(Segment.side, Segment.index).where(Segment.call_id == call.id)
    ]
    for key in objects:
        storage.delete(key)
    Call.update(
        {Call.video_url: None, Call.poster_url: None, Call.caller_video_url: None, Call.callee_video_url: None, Call.updated_at: utcnow()}
    ).where(Call.id == call.id).execute()
    return f"{len(objects)} object(s) deleted"


def act(action: str, call: Call, operator: str, settings: Settings, storage: Callable[[], Storage]) -> Outcome:
    """Do ``action`` to one call (checked again: it may have moved since the confirmation), recorded with ``operator``."""
    reason = why_not(action, call, settings)
    if reason:
        return Outcome(call.id, False, reason)
    try:
        if action == "retry":
            text = f"retried from {retry_call(call.id, operator=operator)}"  # retry_call records it
        elif action == "rerender":
            text = _rerender(call)
            events.record(call.id, events.Kind.RERENDER, operator=operator)
        else:
            text = _delete_media(call, storage())
            events.record(call.id, events.Kind.MEDIA_DELETED, operator=operator, detail=text)
    except RetryError as exc:
        return Outcome(call.id, False, str(exc))
    except dramatiq.errors.BrokerError:
        log.exception("bulk %s not sent", action, extra={"call_id": call.id})
        return Outcome(call.id, False, "the broker is unavailable: try again shortly")
    log.info("bulk %s by %s: %s", action, operator, text, extra={"call_id": call.id})
    return Outcome(call.id, True, text)


class _BulkForm:
    access = SESSION

    def __init__(self, signer: SessionSigner, settings: Settings, storage: Callable[[], Storage]) -> None:
        self.signer = signer
        self.settings = settings
        self.storage = storage

    def checked(self, req: falcon.Request) -> tuple[Session, dict[str, list[str]], str]:
        session: Session = req.context.session
        form = read_form(req)
        if not self.signer.csrf_ok(session, _first(form, "csrf")):
            log.warning("bulk POST refused: bad CSRF token", extra={"path": req.path})
            raise falcon.HTTPForbidden(
                title="Invalid form", description="The form expired or came from elsewhere: reload the page and try again."
            )
        action = _first(form, "action")
        if action not in ACTIONS:
            raise falcon.HTTPBadRequest(title="Invalid form", description=f"Choose an action: {', '.join(ACTIONS)}.")
        return session, form, action

    def calls_of(self, form: dict[str, list[str]]) -> list[Call]:
        if _first(form, "scope") == "filter":
            filters = {name: _first(form, name) for name in ("status", "stage", "q") if _first(form, name)}
            try:
                query = parse_list_query(filters)
            except InvalidQuery as exc:
                raise falcon.HTTPBadRequest(title="Invalid filter", description=exc.description) from None
            calls = newest_calls(status=query.status, stage=query.stage, search=query.search, limit=BULK_MAX + 1)
            if len(calls) > BULK_MAX:
                raise falcon.HTTPBadRequest(
                    title="Too many calls", description=f"More than {BULK_MAX} calls match this filter: narrow it down."
                )
            return calls
        ids = [i for i in form.get("id", []) if keys.CALL_ID_RE.match(i)]
        if not ids:
            raise falcon.HTTPBadRequest(title="No call chosen", description="Tick the calls to act on, or choose all matching the filter.")
        found = {c.id: c for c in Call.select().where(Call.id.in_(ids[:BULK_MAX]))}
        return [found[i] for i in dict.fromkeys(ids) if i in found]


def _plan(action: str, reason: str | None) -> str:
    return "will " + ACTIONS[action].lower() if reason is None else "not offered: " + reason


def _send(resp: falcon.Response, title: str, content: Markup, csrf: str) -> None:
    from .pages import send_page  # pages imports the list's fragments; imported late to keep the modules apart

    send_page(resp, title=title, content=content, csrf=csrf)


class BulkConfirm(_BulkForm):
    """``POST /ops/bulk``: what the action would do to each call; nothing changes until confirmed."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session, form, action = self.checked(req)
        calls = self.calls_of(form)
        rows, able = [], []
        for call in calls:
            reason = why_not(action, call, self.settings)
            if reason is None:
                able.append(call.id)
            rows.append(
                Markup(f'<tr class="{"able" if reason is None else "refused"}" data-call-id="{escape(call.id)}">')
                + Markup(f'<td><a href="/ops/calls/{escape(call.id)}"><code>{escape(call.id)}</code></a></td>')
                + Markup(f'<td><span class="badge status-{escape(call.video_status)}">{escape(call.video_status)}</span></td>')
                + Markup(f'<td class="why">{escape(_plan(action, reason))}</td></tr>')
            )
        csrf = self.signer.csrf_token(session)
        hidden = join(Markup(f'<input type="hidden" name="id" value="{escape(i)}">') for i in able)
        button = (
            Markup(
                f'<form method="post" action="/ops/bulk/run" id="bulk-confirm"><input type="hidden" name="csrf" value="{escape(csrf)}">'
                f'<input type="hidden" name="action" value="{escape(action)}">{hidden}'
                f'<button type="submit" id="bulk-confirm-button">{escape(ACTIONS[action])} {len(able)} call(s)</button> '
                '<a href="/ops/calls">Cancel</a></form>'
            )
            if able
            else Markup('<p class="notice" id="bulk-nothing">None of these calls can take this action. <a href="/ops/calls">Back</a></p>')
        )
        content = Markup(
            f'<section class="card"><h1>{escape(ACTIONS[action])}: confirm</h1>'
            f"<p>{len(able)} of {len(calls)} call(s) can take this action; it is recorded in each call's history as done by "
            f"<strong>{escape(session.operator)}</strong>.</p>"
            f'<table class="bulk" id="bulk-calls"><thead><tr><th>Call</th><th>Status</th><th>What happens</th></tr></thead>'
            f"<tbody>{join(rows)}</tbody></table>{button}</section>"
        )
        _send(resp, f"{ACTIONS[action]}: confirm", content, csrf)


class BulkRun(_BulkForm):
    """``POST /ops/bulk/run``: the confirmed action, call by call, and what became of each."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session, form, action = self.checked(req)
        calls = self.calls_of(form)
        outcomes = [act(action, call, session.operator, self.settings, self.storage) for call in calls]
        rows = [
            Markup(f'<tr class="{"done" if o.done else "refused"}" data-call-id="{escape(o.call_id)}">')
            + Markup(f'<td><a href="/ops/calls/{escape(o.call_id)}"><code>{escape(o.call_id)}</code></a></td>')
            + Markup(f"<td>{escape(o.text)}</td></tr>")
            for o in outcomes
        ]
        done = sum(o.done for o in outcomes)
        content = Markup(
            f'<section class="card"><h1>{escape(ACTIONS[action])}: done</h1>'
            f'<p id="bulk-summary">{done} of {len(outcomes)} call(s) done, by {escape(session.operator)}.</p>'
            '<table class="bulk" id="bulk-outcomes"><thead><tr><th>Call</th><th>Outcome</th></tr></thead>'
            f"<tbody>{join(rows)}</tbody></table>"
            '<p><a href="/ops/calls">All calls</a></p></section>'
        )
        _send(resp, f"{ACTIONS[action]}: done", content, self.signer.csrf_token(session))


def bulk_form(csrf: str, params: dict[str, str]) -> Markup:
    """The form above the list; its checkboxes are in the rows (``form="bulk-form"``)."""
    kept = {k: v for k, v in params.items() if k in ("status", "stage", "q")}
    filters = join(Markup(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">') for k, v in kept.items())
    options = join(Markup(f'<option value="{escape(k)}">{escape(v)}</option>') for k, v in ACTIONS.items())
    return Markup(
        f'<form class="bulk" method="post" action="/ops/bulk" id="bulk-form"><input type="hidden" name="csrf" value="{escape(csrf)}">'
        f"{filters}"
        f'<label>With <select name="scope" id="bulk-scope"><option value="ids">the ticked calls</option>'
        f'<option value="filter">all calls matching this filter</option></select></label> '
        f'<label><select name="action" id="bulk-action">{options}</select></label> '
        '<button type="submit" id="bulk-review">Review…</button></form>'
    )


def add_bulk_routes(app: falcon.App, signer: SessionSigner, settings: Settings, storage: Callable[[], Storage]) -> None:
    app.add_route("/ops/bulk", BulkConfirm(signer, settings, storage))
    app.add_route("/ops/bulk/run", BulkRun(signer, settings, storage))
