"""The list and the call page keep themselves current while something is in flight, without a full reload.

``static/live.js`` polls a JSON endpoint of the page it is on every
:data:`POLL_SECONDS` while the page says something is running, and puts the
fragments it gets in place (server-rendered and escaped here, as the page
itself is); it stops once nothing is in flight. Without script the page is
whole and a ``<noscript>`` refresh reloads it instead.

- ``GET /ops/calls/{callId}/live``: the call's facts, stage timeline and history
- ``GET /ops/live?id=…&id=…``: the list's rows named (at most :data:`MAX_IDS`)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

from shared import keys
from shared.callview import call_view
from shared.events import history
from shared.models import Call, VideoStatus, utcnow

from . import fragments as f
from .api import find_call
from .auth import SESSION
from .events import events_table
from .media import video_link
from .templating import Markup, escape, render

__all__ = ["POLL_SECONDS", "CallLive", "ListLive", "facts", "live_marker", "in_flight"]

POLL_SECONDS = 3
MAX_IDS = 100


def in_flight(call: Call) -> bool:
    return call.video_status not in VideoStatus.TERMINAL or bool(call.rerender)


def live_marker(url: str, active: bool) -> Markup:
    """The element live.js looks for: where to poll, and whether to start at all; a refresh for pages without script."""
    if not active:
        return Markup("")
    return Markup(
        f'<div id="live" data-live-url="{escape(url)}" data-live-seconds="{POLL_SECONDS}" hidden></div>'
        f'<noscript><meta http-equiv="refresh" content="{POLL_SECONDS * 3}"></noscript>'
        '<script src="/ops/static/live.js" defer></script>'
    )


def facts(view: dict[str, Any], now: dt.datetime) -> Markup:
    recording = view["recording"]
    summary = " · ".join(
        part
        for part in (
            recording["sid"] or "no recording SID",
            f.duration_text(view["duration"]),
            f"{recording['channels']} channels" if recording["channels"] else "",
        )
        if part
    )
    ended = view["status"] in VideoStatus.TERMINAL
    return render(
        "call_facts",
        status=view["status"] or "unknown",
        stage=view["stage"] or "—",
        created=f.time_text(view["created_at"]),
        age=f.age_text(view["created_at"], now),
        recording=summary,
        processing=f.duration_text(view["processing"]["seconds"]) + ("" if ended else " so far"),
        source=" · external id ".join(part for part in (view["source"] or "—", view["external_id"]) if part),
        fal_cost=fal_cost_text(view["fal_cost_usd"], view["fal_cost_final"]),
    )


def fal_cost_text(dollars: float | None, final: bool) -> str:
    """A call's fal.ai cost as the operator reads it (#26): the estimate until generation has ended."""
    if dollars is None:
        return "—"
    return f"${dollars:.2f}" + ("" if final else " (estimate)")


class CallLive:
    access = SESSION

    def __init__(self, storage: Any) -> None:
        self._storage = storage

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        call, now = find_call(call_id), utcnow()
        view = call_view(call, video_link(self._storage()), now)
        resp.media = {
            "status": view["status"],
            "in_flight": in_flight(call),
            "parts": {
                "live-facts": facts(view, now),
                "live-timeline": f.timeline_table(view, now),
                "live-events": events_table(history(call.id)),
            },
        }
        resp.set_header("Cache-Control", "no-store")


class ListLive:
    access = SESSION

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ids = [i for i in req.get_param_as_list("id") or [] if keys.CALL_ID_RE.match(i)][:MAX_IDS]
        now = utcnow()
        calls = list(Call.select().where(Call.id.in_(ids))) if ids else []
        resp.media = {
            "rows": {call.id: f.call_row(call, now) for call in calls},
            "in_flight": any(in_flight(call) for call in calls),
        }
        resp.set_header("Cache-Control", "no-store")
