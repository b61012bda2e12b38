"""The pieces of the operator page: rows, the stage timeline, segments, videos, the backlog.

Each function takes plain values (calls, parts of ``shared.callview``'s view) and
returns :class:`~services.ingest.web.templating.Markup` built from escaped parts,
so pages.py only arranges them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from shared.calls import processing_seconds
from shared.callview import call_duration
from shared.models import Call
from shared.transcript import Transcript

from .backlog import Backlog
from .templating import Markup, escape, join, render

__all__ = [
    "duration_text",
    "age_text",
    "time_text",
    "options",
    "call_row",
    "backlog_table",
    "timeline_table",
    "segments_table",
    "sides_table",
    "video_figure",
    "message_box",
    "clock_text",
    "transcript_section",
]


def duration_text(seconds: float | None) -> str:
    """``4.2 s``, ``1 m 05 s``, ``2 h 03 m``; a dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} m" if hours else f"{minutes} m {secs:02d} s"


def age_text(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "—"
    seconds = max(0.0, (now - when).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def time_text(when: dt.datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "—"


def options(values: Iterable[str], selected: str | None, *, everything: str) -> Markup:
    """``<option>``s of a filter, the first meaning "no filter"."""
    items = [Markup(f'<option value="">{escape(everything)}</option>')]
    for value in values:
        chosen = " selected" if value == selected else ""
        items.append(Markup(f'<option value="{escape(value)}"{chosen}>{escape(value)}</option>'))
    return join(items, "")


def call_row(call: Call, now: dt.datetime) -> Markup:
    return render(
        "call_row",
        id=call.id,
        # Where it came from: twilio and its RecordingSid, or api/vapi/… and the submitter's own id.
        origin=" · ".join(part for part in (call.source, call.recording_sid or call.external_id) if part),
        status=call.video_status or "unknown",
        stage=call.stage or "—",
        duration=duration_text(call_duration(call)),
        created=time_text(call.created_at),
        age=age_text(call.created_at, now),
        processing=duration_text(processing_seconds(call, now)),
        error=(call.video_error_message or "")[:200],
    )


def badge(value: str | None, prefix: str = "state") -> Markup:
    value = value or "unknown"
    return Markup(f'<span class="badge {prefix}-{escape(value)}">{escape(value)}</span>')


def backlog_table(backlog: Backlog) -> Markup:
    queues = backlog.source == "rabbitmq"
    headers = ("Ready", "In progress", "Delayed", "Dead", "Consumers") if queues else ()
    rows = []
    for s in backlog.stages:
        cells = [Markup(f'<td><a href="/ops/calls?stage={escape(s.stage)}">{escape(s.stage)}</a></td>'), s.calls]
        if queues:
            cells += [s.ready, s.in_progress, s.delayed, s.dead, s.consumers]
        tds = [c if isinstance(c, Markup) else Markup(f'<td class="num">{escape(c)}</td>') for c in cells]
        rows.append(Markup(f'<tr data-stage="{escape(s.stage)}">{join(tds, "")}</tr>'))
    source = "RabbitMQ queues and database" if queues else "database: calls not yet ended, per stage"
    return render(
        "backlog",
        source=source,
        warning=message_box(backlog.error, bad=True) if backlog.error else "",
        queue_headers=join((Markup(f'<th class="num">{escape(h)}</th>') for h in headers), ""),
        rows=join(rows),
    )


def _bar(start: float, width: float, state: str) -> Markup:
    return Markup(
        '<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">'
        f'<rect x="{start:.2f}" y="1" width="{max(width, 0.6):.2f}" height="8" class="state-{escape(state)}"></rect></svg>'
    )


def _stage_end(ended: dt.datetime | None, row: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
    """Where a stage's bar ends: its finish, now while it runs, the call's end (``ended``) if it stopped there."""
    if not row["started_at"]:
        return None
    if row["finished_at"]:
        return row["finished_at"]
    if row["state"] == "running":
        return now
    return ended if ended and ended >= row["started_at"] else row["started_at"]


def timeline_table(view: dict[str, Any], now: dt.datetime) -> Markup:
    """Each stage of a call's view (``shared.callview``): state, times, duration and attempts, with a bar on the call's own time axis."""
    timeline = [{"stage": stage, **row} for stage, row in view["stages"].items()]
    ended = view["processing"]["completed_at"]
    starts = [row["started_at"] for row in timeline if row["started_at"]]
    origin = min(starts) if starts else None
    ends = [end for row in timeline if (end := _stage_end(ended, row, now)) is not None]
    span = max(((max(ends) - origin).total_seconds() if origin else 0.0), 0.001)
    rows = []
    for row in timeline:
        bar: Markup | str = ""
        end = _stage_end(ended, row, now)
        if origin and row["started_at"] and end:
            offset = min((row["started_at"] - origin).total_seconds() / span * 100, 99.4)
            bar = _bar(offset, (end - row["started_at"]).total_seconds() / span * 100, row["state"])
        seconds = row["seconds"]
        if seconds is None and row["state"] == "running" and row["started_at"]:
            seconds = (now - row["started_at"]).total_seconds()
        rows.append(
            Markup(
                f'<tr data-stage="{escape(row["stage"])}"><td>{escape(row["stage"])}</td><td>{badge(row["state"])}</td>'
                f'<td>{escape(time_text(row["started_at"]))}</td><td>{escape(time_text(row["finished_at"]))}</td>'
                f'<td class="num">{escape(duration_text(seconds))}</td><td class="num">{escape(row["attempts"])}</td>'
                f"<td>{bar}</td></tr>"
            )
        )
    head = "".join(f"<th{c}>{h}</th>" for h, c in (
        ("Stage", ""), ("State", ""), ("Started", ""), ("Finished", ""),
        ("Duration", ' class="num"'), ("Attempts", ' class="num"'), ("", ""),
    ))
    return Markup(f'<table id="timeline" class="timeline"><thead><tr>{head}</tr></thead><tbody>{join(rows)}</tbody></table>')


def segments_table(segments: list[dict[str, Any]]) -> Markup:
    """The fal.ai segments: span, state, request id, attempts, times, error or progress, video."""
    if not segments:
        return Markup('<p class="muted" id="segments">No fal.ai segments (local panels, or not planned yet).</p>')
    rows = []
    for s in segments:
        link = s["video_url"]
        video = Markup(f'<a href="{escape(link)}">video</a>') if link else ""
        note = s["error"] or s["progress"] or ""
        rows.append(
            Markup(
                f'<tr data-side="{escape(s["side"])}" data-index="{escape(s["index"])}">'
                f'<td>{escape(s["side"])}</td><td class="num">{escape(s["index"])}</td>'
                f'<td class="num">{s["start"]:.2f}–{s["end"]:.2f} s</td><td>{badge(s["state"])}</td>'
                f'<td><code>{escape(s["fal_request_id"] or "—")}</code></td><td class="num">{escape(s["attempts"])}</td>'
                f'<td>{escape(time_text(s["submitted_at"]))}</td><td>{escape(time_text(s["finished_at"]))}</td>'
                f'<td class="error-cell">{escape(note)}</td><td>{video}</td></tr>'
            )
        )
    columns = ("Side", "#", "Span", "State", "fal request id", "Attempts", "Submitted", "Finished", "Error / progress", "")
    head = "".join(f"<th>{h}</th>" for h in columns)
    return Markup(f'<table id="segments"><thead><tr>{head}</tr></thead><tbody>{join(rows)}</tbody></table>')


def sides_table(sides: dict[str, dict[str, Any]]) -> Markup:
    rows = []
    for side, shown in sides.items():
        rows.append(
            Markup(
                f'<tr data-side="{escape(side)}"><td>{escape(side)}</td><td>{badge(shown["state"])}</td>'
                f'<td class="num">{escape(duration_text(shown["duration"]))}</td>'
                f'<td class="error-cell">{escape(shown["error"] or "")}</td></tr>'
            )
        )
    return Markup(
        '<table id="sides" class="sides"><thead><tr><th>Side</th><th>State</th><th class="num">Audio</th><th>Error</th></tr></thead>'
        f"<tbody>{join(rows)}</tbody></table>"
    )


def video_figure(src: str, *, element_id: str, caption: str, kind: str, poster: str | None = None) -> Markup:
    """A player with a download link; ``poster``: the still shown before it plays."""
    attribute = Markup(f' poster="{escape(poster)}"') if poster else ""
    return render("video", src=src, element_id=element_id, caption=caption, kind=kind, poster=attribute)


def message_box(text: str | None, *, bad: bool = False) -> Markup:
    if not text:
        return Markup("")
    return Markup(f'<div class="notice{" bad" if bad else ""}" role="status">{escape(text)}</div>')


def clock_text(seconds: float) -> str:
    """A time in a recording as a player shows it (cut to tenths, not rounded up): ``0:07.4``, ``12:03.0``, ``1:02:03.0``."""
    tenths = int(seconds * 10 + 1e-6)
    minutes, rest = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    clock = f"{minutes:d}:{rest // 10:02d}.{rest % 10:d}"
    return f"{hours:d}:{minutes:02d}:{rest // 10:02d}.{rest % 10:d}" if hours else clock


def _turn(number: int, turn: Any, names: dict[str, str], video: tuple[str, str] | None) -> Markup:
    at = f"{turn.start:.3f}".rstrip("0").rstrip(".")
    stamp = Markup(f'<time datetime="PT{escape(at)}S">{escape(clock_text(turn.start))}</time>')
    if video:
        # A media-fragment link: without script it opens the video at this time; operator.js seeks the player instead.
        src, element_id = video
        stamp = Markup(
            f'<a class="seek" href="{escape(src)}#t={escape(at)}" data-seek="{escape(at)}" data-video="{escape(element_id)}">{stamp}</a>'
        )
    return Markup(
        f'<li class="turn {escape(turn.speaker)}" id="turn-{number}" data-start="{escape(at)}" data-end="{turn.end:.3f}">'
        f'{stamp} <bdi class="speaker">{escape(names[turn.speaker])}</bdi> <span class="text" dir="auto">{escape(turn.text)}</span></li>'
    )


def transcript_section(
    status: str,
    error: str | None,
    transcript: Transcript | None,
    names: dict[str, str],
    *,
    video: tuple[str, str] | None,
    problem: str | None = None,
) -> Markup:
    """The transcript under the video, turn by turn with times; each time seeks ``video`` (its src and element id)."""
    head = Markup(f'<h3>Transcript {badge(status)}</h3>')
    notes = [message_box(error, bad=True), message_box(problem, bad=True)]
    if transcript is None:
        empty = {
            "none": "No transcript: none was supplied, and speech-to-text is off for this call.",
            "transcribing": "Speech-to-text is running; the transcript shows here when it is done.",
            "failed": "No transcript: the video has no captions.",
        }.get(status, "No transcript to show.")
        body = Markup(f'<p class="muted">{escape(empty)}</p>')
    else:
        body = Markup(f'<ol class="turns">{join(_turn(n, t, names, video) for n, t in enumerate(transcript.turns, start=1))}</ol>')
    return Markup(f'<section class="transcript" id="transcript">{head}{join(notes, "")}{body}</section>')
