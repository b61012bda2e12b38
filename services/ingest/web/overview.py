"""The overview page (``GET /ops/overview``, the console's landing page): how the system is doing over time.

Over the last 24 hours or 7 days (``?range=24h|7d``): calls per hour and their
outcome, time per stage and webhook → video (p50/p95), fal.ai spend per day and
the commonest failure reasons, each linking to its calls. The numbers are SQL
aggregates (``stats``); the charts are inline SVG (``charts``) with the same
numbers in tables beside them, so the page reads without JavaScript.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import falcon

from shared.fal_models import UnknownModel, model_for, price_per_second
from shared.models import utcnow
from shared.settings import Settings

from . import stats
from .charts import Series, stacked_bars
from .fragments import duration_text
from .pages import _Page, send_page
from .session import Session, SessionSigner
from .templating import Markup, escape, join, render

__all__ = ["OverviewPage", "RANGES", "OVERVIEW_PATH"]

OVERVIEW_PATH = "/ops/overview"
RANGES = {"24h": ("last 24 hours", dt.timedelta(hours=24)), "7d": ("last 7 days", dt.timedelta(days=7))}
SPEND_DAYS = 7
REFRESH_SECONDS = 30  # the page reloads itself (operator.js), so its banners and last hour stay current
CURRENT = ' aria-current="page"'


def _hours(now: dt.datetime, span: dt.timedelta) -> list[dt.datetime]:
    first = (now - span).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return [first + dt.timedelta(hours=i) for i in range(int(span.total_seconds() // 3600))]


def _seconds_text(value: float | None) -> str:
    """A percentile read from buckets: approximate, so said with ≈ (over the last bound: more than it)."""
    if value is None:
        return "—"
    if value >= stats.DURATION_BOUNDS[-1]:
        return "> " + duration_text(value)
    return "≈ " + (f"{value:.1f} s" if value < 60 else duration_text(value))


class OverviewPage(_Page):
    def __init__(self, signer: SessionSigner, settings: Settings) -> None:
        super().__init__(signer)
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session: Session = req.context.session
        chosen = req.get_param("range") or "24h"
        if chosen not in RANGES:
            raise falcon.HTTPBadRequest(title="Invalid range", description=f"range must be one of {', '.join(RANGES)}")
        label, span = RANGES[chosen]
        now = utcnow()
        hours = _hours(now, span)
        since = hours[0]
        first_day = (now - dt.timedelta(days=SPEND_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        ended = stats.hours_ended(min(since, first_day), now)  # one read serves the chart and the spend
        content = render(
            "overview",
            range_links=join(
                [Markup(f'<a href="{OVERVIEW_PATH}?range={key}"{CURRENT if key == chosen else ""}>{escape(text)}</a>')
                 for key, (text, _) in RANGES.items()],
                " · ",
            ),
            window=label,
            since=since.strftime("%Y-%m-%d %H:00 UTC"),
            outcomes=self._outcomes(hours, ended, chosen),
            durations=self._durations(ended, since),
            spend=self._spend(first_day, ended),
            reasons=self._reasons(ended, since),
        )
        send_page(resp, title="Overview", content=content, csrf=self.signer.csrf_token(session), refresh=REFRESH_SECONDS)

    def _outcomes(self, hours: list[dt.datetime], ended: dict[dt.datetime, stats.Hour], chosen: str) -> Markup:
        empty = stats.Hour()
        series = [Series(o, [getattr(ended.get(h, empty), o) for h in hours]) for o in stats.OUTCOMES]
        totals = {o: int(sum(s.values)) for o, s in zip(stats.OUTCOMES, series, strict=True)}
        total = sum(totals.values())
        cards = [Markup(f'<div class="stat" data-outcome="all"><span class="value" id="total-ended">{total}</span> calls ended</div>')]
        for outcome, count in totals.items():
            cards.append(Markup(
                f'<div class="stat" data-outcome="{outcome}"><span class="value" id="total-{outcome}">{count}</span>'
                f" {escape(outcome)}</div>"
            ))
        running = stats.in_progress()
        cards.append(Markup(
            f'<div class="stat" data-outcome="in-progress"><a href="/ops/calls?status=generating"><span class="value" id="in-progress">'
            f"{running}</span></a> in progress now</div>"
        ))
        chart = stacked_bars(
            element_id="calls-per-hour", title=f"Calls ended per hour, {len(hours)} hours",
            description=f"{total} calls ended since {hours[0]:%Y-%m-%d %H:00} UTC: "
            + ", ".join(f"{count} {outcome}" for outcome, count in totals.items()) + ".",
            labels=[h.strftime("%H:00") if chosen == "24h" else h.strftime("%a %H:00") for h in hours],
            series=series, tick_every=3 if chosen == "24h" else 24,
        )
        rows = [
            Markup(f'<tr data-hour="{h:%Y-%m-%d %H}"><td>{h:%Y-%m-%d %H}:00</td>'
                   + "".join(f'<td class="num">{getattr(ended[h], o)}</td>' for o in stats.OUTCOMES) + "</tr>")
            for h in hours if h in ended and ended[h].ended
        ]
        head = "".join(f'<th class="num">{escape(o)}</th>' for o in stats.OUTCOMES)
        table = Markup(
            f'<details><summary>The numbers per hour</summary><table id="per-hour"><thead><tr><th>Hour (UTC)</th>{head}</tr></thead>'
            f'<tbody>{join(rows) or Markup("<tr><td colspan=4 class=muted>No call ended.</td></tr>")}</tbody></table></details>'
        )
        return Markup(f'<div class="stats">{join(cards, "")}</div>{chart}{table}')

    def _durations(self, ended: dict[dt.datetime, stats.Hour], since: dt.datetime) -> Markup:
        rows = [
            Markup(
                f'<tr data-measure="{escape(d.name)}"><td>{escape(d.name)}</td><td class="num">{d.count}</td>'
                f'<td class="num" data-seconds="{"" if d.p50 is None else d.p50}">{escape(_seconds_text(d.p50))}</td>'
                f'<td class="num" data-seconds="{"" if d.p95 is None else d.p95}">{escape(_seconds_text(d.p95))}</td></tr>'
            )
            for d in stats.durations(ended, since)
        ]
        return join(rows)

    def _spend(self, first: dt.datetime, ended: dict[dt.datetime, stats.Hour]) -> Markup:
        days = [first + dt.timedelta(days=i) for i in range(SPEND_DAYS)]
        price = _list_price(self.settings.fal_model)
        per_day = {day.date(): stats.Hour() for day in days}
        for moment, hour in ended.items():
            day = per_day.get(moment.date())
            if day is not None:
                day.completed += hour.completed
                day.partial += hour.partial
                day.failed += hour.failed
                day.fal_cost_usd += hour.fal_cost_usd
                day.fal_seconds += hour.fal_seconds
        recorded = [per_day[d.date()].fal_cost_usd for d in days]
        estimated = [per_day[d.date()].fal_seconds * price for d in days]
        total = sum(recorded) + sum(estimated)
        chart = stacked_bars(
            element_id="spend-per-day", title=f"fal.ai spend per day, last {SPEND_DAYS} days",
            description=f"${total:,.2f} in {SPEND_DAYS} days: ${sum(recorded):,.2f} recorded, ${sum(estimated):,.2f} estimated.",
            labels=[d.strftime("%a %d") for d in days],
            series=[Series("spend", recorded), Series("estimated", estimated)], unit="$",
        )
        rows = [
            Markup(
                f'<tr data-day="{d:%Y-%m-%d}"><td>{d:%Y-%m-%d}</td><td class="num">{per_day[d.date()].ended}</td>'
                f'<td class="num">${recorded[i]:,.2f}</td><td class="num">${estimated[i]:,.2f}</td>'
                f'<td class="num">${recorded[i] + estimated[i]:,.2f}</td></tr>'
            )
            for i, d in enumerate(days)
        ]
        note = (
            f"Recorded: fal_cost_usd of the calls that ended that day. Estimated: seconds of video fal.ai generated × "
            f"the list price of FAL_MODEL (${price:g} a second), for calls without a recorded cost."
        )
        return Markup(
            f'{chart}<p class="muted small">{escape(note)}</p><table id="spend"><thead><tr><th>Day (UTC)</th>'
            '<th class="num">Calls ended</th><th class="num">Recorded</th><th class="num">Estimated</th><th class="num">Total</th>'
            f"</tr></thead><tbody>{join(rows)}</tbody></table>"
        )

    def _reasons(self, ended: dict[dt.datetime, stats.Hour], since: dt.datetime) -> Markup:
        rows = [
            Markup(
                f'<tr><td><a href="/ops/calls?{escape(urlencode({"reason": reason}))}">{escape(reason)}</a></td>'
                f'<td class="num">{count}</td></tr>'
            )
            for reason, count in stats.failure_reasons(ended, since)
        ]
        return join(rows) or Markup('<tr><td colspan="2" class="muted">No failed call in this window.</td></tr>')


def _list_price(endpoint: str) -> float:
    """The configured model's list price per generated second (shared/fal_models.py); 0 for an unknown model."""
    try:
        return price_per_second(model_for(endpoint))
    except UnknownModel:
        return 0.0
