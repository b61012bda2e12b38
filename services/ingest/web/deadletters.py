"""Dead letters: the messages each stage gave up on (Dramatiq's ``<queue>.XQ``), listed, retried or discarded.

``GET /ops/dead-letters`` lists them with the call each belongs to;
``POST /ops/dead-letters`` (CSRF) retries or discards one, or all of one
queue, or all.

Messages are read with ``basic_get`` without acknowledging them, on a
connection of their own: whatever is not acted on goes back to its queue,
in order, when that connection closes, so reading loses nothing. Acting is
publish first, then acknowledge the dead letter: a crash in between leaves
the dead letter in place (the retried work may then run twice, which the
actors are built for: ``shared/skeleton.py``), never neither.

Retrying a message of a call that has ended (the give-up marked it failed
when its message died) goes through ``shared.retry.retry_call``, which reopens
the call and sends its first unfinished stage's message again: re-publishing
the dead body alone would be skipped by a stage that finds the call ended.
Any other message (a fal poll, a call still in flight) is published again as
it was, its retry count reset so it gets its full retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
import falcon
import pika
from dramatiq import Message
from dramatiq.common import q_name, xq_name

from shared import contracts, events
from shared.models import Call, Segment, VideoStatus
from shared.retry import RetryError, retry_call
from shared.settings import Settings
from shared.speech_jobs import SpeechJob

from .auth import SESSION
from .bulk import read_form
from .session import Session, SessionSigner
from .templating import Markup, escape, join

__all__ = ["DeadLetter", "DeadLetterStore", "add_dead_letter_routes"]

log = logging.getLogger("callreel.ingest.deadletters")

LIST_MAX = 200  # dead letters shown per queue
SCAN_MAX = 5000  # dead letters looked through to find the ones acted on
#: Options Dramatiq's middleware wrote while the message failed; a retry starts without them.
SPENT_OPTIONS = ("retries", "traceback", "eta", "dead_message_ttl")


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the stage's queue (``audio``), not its XQ
    message_id: str
    actor: str
    kwargs: dict[str, Any]
    call_id: str | None
    error: str  # the last traceback's last line, when Dramatiq kept one
    body: bytes

    @property
    def message(self) -> Message:
        return Message.decode(self.body)


def _call_of(kwargs: dict[str, Any]) -> str | None:
    """The call a message belongs to: named, or through its fal job's row."""
    if isinstance(kwargs.get("call_id"), str):
        return kwargs["call_id"]
    for name, rows in (("segment_id", Segment), ("job_id", SpeechJob)):
        row_id = kwargs.get(name)
        if isinstance(row_id, int) and not isinstance(row_id, bool):
            row = rows.get_or_none(rows.id == row_id)
            return row.call_id if row is not None else None
    return None


def parse(queue: str, body: bytes) -> DeadLetter | None:
    try:
        data = json.loads(body)
        message_id = str(data["message_id"])
        kwargs = data.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            kwargs = {}
    except (ValueError, KeyError, TypeError):
        return None
    traceback = str((data.get("options") or {}).get("traceback") or "").strip().splitlines()
    error = traceback[-1] if traceback else ""
    return DeadLetter(queue, message_id, str(data.get("actor_name", "?")), kwargs, _call_of(kwargs), error, body)


class DeadLetterStore:
    """The XQ queues of the pipeline's stages, on BROKER_URL, through a connection per operation."""

    def __init__(self, settings: Settings, *, queues: tuple[str, ...] = contracts.QUEUES) -> None:
        self._url = settings.broker_url
        self.queues = queues

    @property
    def configured(self) -> bool:
        return self._url.startswith(("amqp://", "amqps://"))

    @contextmanager
    def _channel(self) -> Iterator[Any]:
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            yield connection
        finally:
            if connection.is_open:
                connection.close()  # what was taken and not acknowledged goes back to its queue

    def _held(self, connection: Any, queue: str, limit: int) -> Iterator[tuple[Any, int, DeadLetter | None]]:
        """Up to ``limit`` dead letters of ``queue``, each held (unacknowledged) until the connection closes."""
        channel = connection.channel()
        try:
            channel.queue_declare(xq_name(queue), passive=True)
        except pika.exceptions.ChannelClosedByBroker:  # no such queue: its stage never ran here
            return
        for _ in range(limit):
            method, _properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                return
            yield channel, method.delivery_tag, parse(queue, body)

    def read(self) -> dict[str, list[DeadLetter]]:
        found: dict[str, list[DeadLetter]] = {}
        with self._channel() as connection:
            for queue in self.queues:
                found[queue] = [letter for _, _, letter in self._held(connection, queue, LIST_MAX) if letter is not None]
        return found

    def act(self, action: str, operator: str, *, queue: str | None = None, message_id: str | None = None) -> list[str]:
        """Retry or discard the dead letters named (one, a queue's, or all); what was done, a line each."""
        done: list[str] = []
        with self._channel() as connection:
            for name in self.queues:
                if queue is not None and name != queue:
                    continue
                for channel, tag, letter in self._held(connection, name, SCAN_MAX):
                    if letter is None or (message_id is not None and letter.message_id != message_id):
                        continue
                    if action == "retry":
                        line = self._retry(letter, operator)
                    else:
                        line = f"discarded {letter.actor} {letter.message_id}"
                        events.record(
                            letter.call_id, events.Kind.DEAD_LETTER_DISCARDED, stage=letter.queue, operator=operator,
                            message_id=letter.message_id, actor=letter.actor,
                        )
                    channel.basic_ack(tag)  # only once the retry is sent: a failed send raised before this
                    done.append(line)
                    if message_id is not None:
                        return done
        return done

    def _retry(self, letter: DeadLetter, operator: str) -> str:
        call = Call.get_or_none(Call.id == letter.call_id) if letter.call_id else None
        if call is not None and call.video_status in (VideoStatus.FAILED, VideoStatus.PARTIAL):
            try:
                stage = retry_call(call.id, operator=operator)
            except RetryError:
                pass  # nothing to reopen: the message goes again as it was
            else:
                self._record_retry(letter, operator, how=f"call reopened from {stage}")
                return f"retried {letter.actor} {letter.message_id}: call {call.id} runs again from {stage}"
        old = letter.message
        options = {k: v for k, v in old.options.items() if k not in SPENT_OPTIONS}
        fresh: Message = Message(
            queue_name=q_name(old.queue_name), actor_name=old.actor_name, args=old.args, kwargs=old.kwargs,
            options=options, message_id=old.message_id, message_timestamp=old.message_timestamp,
        )
        if fresh.queue_name not in self.queues:
            raise falcon.HTTPBadRequest(title="Unknown queue", description=f"{fresh.queue_name!r} is not a stage's queue.")
        dramatiq.get_broker().enqueue(fresh)
        self._record_retry(letter, operator, how="message sent again")
        return f"retried {letter.actor} {letter.message_id}: sent to {fresh.queue_name} again"

    @staticmethod
    def _record_retry(letter: DeadLetter, operator: str, how: str) -> None:
        events.record(
            letter.call_id, events.Kind.DEAD_LETTER_RETRIED, stage=letter.queue, operator=operator,
            message_id=letter.message_id, actor=letter.actor, how=how,
        )


def _csrf_field(csrf: str) -> Markup:
    return Markup(f'<input type="hidden" name="csrf" value="{escape(csrf)}">')


def _button(csrf: str, action: str, label: str, **fields: str) -> Markup:
    hidden = join(Markup(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">') for k, v in fields.items())
    confirm = f"{label}?"
    return Markup(
        f'<form method="post" action="/ops/dead-letters" class="inline" data-confirm="{escape(confirm)}">{_csrf_field(csrf)}'
        f'<input type="hidden" name="action" value="{escape(action)}">{hidden}<button type="submit">{escape(label)}</button></form>'
    )


def _call_cell(call_id: str | None) -> Markup:
    if not call_id:
        return Markup("<td>—</td>")
    return Markup(f'<td><a href="/ops/calls/{escape(call_id)}"><code>{escape(call_id)}</code></a></td>')


def dead_letter_page(found: dict[str, list[DeadLetter]], csrf: str, notice: Markup | str = "") -> Markup:
    sections = []
    total = sum(len(v) for v in found.values())
    for queue, letters in found.items():
        rows = [
            Markup(f'<tr class="dead-letter" data-message-id="{escape(d.message_id)}" data-queue="{escape(queue)}">')
            + _call_cell(d.call_id)
            + Markup(
                f"<td>{escape(d.actor)}</td><td><code>{escape(d.message_id)}</code></td>"
                f'<td class="error-cell">{escape(d.error[:300])}</td>'
                f"<td>{_button(csrf, 'retry', 'Retry', queue=queue, message_id=d.message_id)}"
                f"{_button(csrf, 'discard', 'Discard', queue=queue, message_id=d.message_id)}</td></tr>"
            )
            for d in letters
        ]
        actions = (
            _button(csrf, "retry", f"Retry all {len(letters)}", queue=queue)
            + _button(csrf, "discard", f"Discard all {len(letters)}", queue=queue)
            if letters else Markup("")
        )
        body = (
            Markup('<table class="dead-letters"><thead><tr><th>Call</th><th>Message</th><th>Id</th><th>Last error</th><th></th></tr>'
                   "</thead>"
                   f"<tbody>{join(rows)}</tbody></table>")
            if letters else Markup('<p class="muted">None.</p>')
        )
        sections.append(
            Markup(f'<section class="card" id="dead-{escape(queue)}"><h2>{escape(queue)} <span class="muted">({len(letters)})</span></h2>')
            + actions + body + Markup("</section>")
        )
    every = (
        Markup(f"<p>{_button(csrf, 'retry', f'Retry all {total}')}{_button(csrf, 'discard', f'Discard all {total}')}</p>") if total else ""
    )
    head = Markup(
        f'<h1>Dead letters <span class="muted" id="dead-total">({total})</span></h1>{escape(notice)}'
        "<p>Messages a stage gave up on after its retries. Retry sends each again (a failed call is reopened from its first "
        "unfinished stage); discard drops it. Each is recorded in its call's history.</p>"
    )
    return Markup(head + Markup(every) + join(sections))


class DeadLetterPage:
    access = SESSION

    def __init__(self, signer: SessionSigner, store: DeadLetterStore) -> None:
        self.signer = signer
        self.store = store

    def _show(self, resp: falcon.Response, session: Session, notice: Markup | str = "", status: str = falcon.HTTP_200) -> None:
        from .fragments import message_box
        from .pages import send_page

        csrf = self.signer.csrf_token(session)
        if not self.store.configured:
            content = Markup('<h1>Dead letters</h1>' + message_box("Dead letters live in RabbitMQ: this deployment runs without it."))
            return send_page(resp, title="Dead letters", content=content, csrf=csrf)
        try:
            found = self.store.read()
        except pika.exceptions.AMQPError as exc:
            content = Markup("<h1>Dead letters</h1>" + message_box(f"RabbitMQ does not answer: {exc.__class__.__name__}", bad=True))
            return send_page(resp, title="Dead letters", content=content, csrf=csrf, status=falcon.HTTP_503)
        send_page(resp, title="Dead letters", content=dead_letter_page(found, csrf, notice), csrf=csrf, status=status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .fragments import message_box

        notice: Markup | str = ""
        for action, past in (("retry", "retried"), ("discard", "discarded")):
            count = req.get_param_as_int(action, min_value=0, max_value=SCAN_MAX * 10)
            if count is not None:
                notice = message_box(f"{count} dead letter(s) {past}." if count else "No such dead letter (already handled?).")
        self._show(resp, req.context.session, notice)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from .fragments import message_box

        session: Session = req.context.session
        form = {k: v[0] for k, v in read_form(req).items()}
        if not self.signer.csrf_ok(session, form.get("csrf")):
            raise falcon.HTTPForbidden(
                title="Invalid form", description="The form expired or came from elsewhere: reload the page and try again."
            )
        action, queue, message_id = form.get("action"), form.get("queue") or None, form.get("message_id") or None
        if action not in ("retry", "discard") or (queue is not None and queue not in self.store.queues):
            raise falcon.HTTPBadRequest(title="Invalid form", description="Retry or discard, a stage's queue.")
        try:
            done = self.store.act(action, session.operator, queue=queue, message_id=message_id)
        except (pika.exceptions.AMQPError, dramatiq.errors.BrokerError) as exc:
            log.error("dead letter %s failed: %s", action, exc)
            problem = message_box(f"RabbitMQ refused: {exc.__class__.__name__}; nothing was lost, try again.", bad=True)
            return self._show(resp, session, problem, falcon.HTTP_503)
        log.info("dead letters %s by %s: %d", action, session.operator, len(done))
        raise falcon.HTTPSeeOther(f"/ops/dead-letters?{action}={len(done)}")


def add_dead_letter_routes(app: falcon.App, signer: SessionSigner, settings: Settings) -> Callable[[], DeadLetterStore]:
    store = DeadLetterStore(settings)
    app.add_route("/ops/dead-letters", DeadLetterPage(signer, store))
    return lambda: store
