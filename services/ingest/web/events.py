"""A call's history (shared/events.py): ``GET /calls/{callId}/events`` for the host application, a table for the page."""

from __future__ import annotations

from typing import Any

import falcon

from shared.callview import as_json
from shared.events import history

from .api import find_call
from .fragments import time_text
from .templating import Markup, escape, join

__all__ = ["EventsResource", "events_table"]

#: What a person reads for each kind (the kind itself is shown too, for searching logs).
LABELS = {
    "received": "Webhook received",
    "stage.begun": "Stage begun",
    "stage.finished": "Stage finished",
    "stage.failed": "Attempt failed",
    "call.failed": "Call failed",
    "fal.submitted": "fal.ai job submitted",
    "fal.completed": "fal.ai job completed",
    "fal.failed": "fal.ai job failed",
    "fal.cancelled": "fal.ai job cancelled",
    "retried": "Retried",
    "swept": "Re-enqueued by the sweeper",
    "operator.rerender": "Re-render asked",
    "operator.delete_media": "Media deleted",
    "operator.dead_letter_retry": "Dead letter retried",
    "operator.dead_letter_discard": "Dead letter discarded",
}
BAD = {"stage.failed", "call.failed", "fal.failed"}


class EventsResource:
    """``GET /calls/{callId}/events``: every event of the call, oldest first (bearer token)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        call = find_call(call_id)
        resp.media = {"id": call.id, "events": as_json(history(call.id))}
        resp.set_header("Cache-Control", "no-store")


def _detail_text(detail: dict[str, Any]) -> str:
    return " · ".join(f"{key} {value}" for key, value in detail.items() if key != "error")


def events_table(events: list[dict[str, Any]]) -> Markup:
    if not events:
        return Markup('<p class="muted" id="no-events">No events recorded for this call yet.</p>')
    rows = []
    for event in events:
        detail = dict(event["detail"])
        error = detail.get("error")
        classes = "event bad" if event["kind"] in BAD else "event"
        rows.append(
            Markup(
                f'<tr class="{classes}" data-kind="{escape(event["kind"])}">'
                f"<td>{escape(time_text(event['at']))}</td>"
                f'<td>{escape(LABELS.get(event["kind"], event["kind"]))} <span class="muted small">{escape(event["kind"])}</span></td>'
                f"<td>{escape(event['stage'] or '')}</td>"
                f'<td class="operator">{escape(event["operator"] or "")}</td>'
                f'<td class="muted small">{escape(event["worker"] or "")}</td>'
                f"<td>{escape(_detail_text(detail))}"
                + (f'<div class="error-cell">{escape(str(error)[:500])}</div>' if error else "")
                + "</td></tr>"
            )
        )
    return Markup(
        '<table class="events" id="events"><thead><tr><th>When (UTC)</th><th>What</th><th>Stage</th><th>Who</th>'
        "<th>Worker</th><th>Detail</th></tr></thead><tbody>" + join(rows) + "</tbody></table>"
    )
