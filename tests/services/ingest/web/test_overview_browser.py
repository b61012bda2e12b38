"""The overview and its banners in headless Chromium, served by gunicorn as deployed: what a person reads is what the database holds."""

from __future__ import annotations

import datetime as dt
import pytest
from dramatiq import Message

from shared.models import Call, VideoStatus, utcnow
from tests.services.ingest.conftest import API_TOKEN
from services.ingest.web import stats
from services.ingest.web.overview import _seconds_text as seconds_text
from tests.services.ingest.web.test_overview import seed
from tests.support.browser import ARTIFACTS, chromium
from tests.support.wait import wait_for

MANAGEMENT = "http://guest:guest@127.0.0.1:15672"
pytestmark = [pytest.mark.browser, pytest.mark.postgres]


@pytest.fixture
def browser():
    with chromium() as launched:
        yield launched


def signed_in(browser, base):
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("/ops/login")
    page.fill("#token", API_TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base}/ops/overview")  # the landing page
    return page


def test_the_overview_shows_the_databases_numbers(serve, browser):
    now = utcnow()
    seed(now)
    base = serve()
    page = signed_in(browser, base)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview-24h.png"), full_page=True)

    since = (now - dt.timedelta(hours=24)).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    calls = list(Call.select())
    ended = [c for c in calls if c.video_processing_completed_at and c.video_processing_completed_at >= since]
    assert int(page.inner_text("#total-ended")) == len(ended) > 10
    for outcome in ("completed", "partial", "failed"):
        assert int(page.inner_text(f"#total-{outcome}")) == sum(c.video_status == outcome for c in ended)
    assert int(page.inner_text("#in-progress")) == sum(c.video_status not in VideoStatus.TERMINAL for c in calls)
    # The chart says the same, bar by bar, in its accessible text and its data.
    assert f"{len(ended)} calls ended since" in page.inner_html("#calls-per-hour desc")
    bars = page.locator("#calls-per-hour g.bar").evaluate_all("gs => gs.map(g => [g.dataset.label, Number(g.dataset.total)])")
    assert len(bars) == 24 and sum(total for _, total in bars) == len(ended)
    newest = max(ended, key=lambda c: c.video_processing_completed_at).video_processing_completed_at
    assert dict(bars)[f"{newest:%H}:00"] == sum(c.video_processing_completed_at.hour == newest.hour for c in ended if c.video_processing_completed_at >= newest - dt.timedelta(hours=1))

    # Stage times: the page's figures are the buckets' (tests/…/test_overview.py checks them against the rows), as text too.
    row = page.locator('#duration-table tr[data-measure="generation"] td')
    seconds = [(c.generation_finished_at - c.generation_started_at).total_seconds() for c in ended if c.generation_finished_at]
    assert int(row.nth(1).inner_text()) == len(seconds)
    shown = {d.name: d for d in stats.durations(stats.hours_ended(since, utcnow()), since)}["generation"]
    assert float(row.nth(2).get_attribute("data-seconds")) == shown.p50 and row.nth(2).inner_text() == seconds_text(shown.p50)
    assert float(row.nth(3).get_attribute("data-seconds")) == shown.p95 and row.nth(3).inner_text() == seconds_text(shown.p95)
    assert min(seconds) <= shown.p50 <= shown.p95 <= 60

    ended_today = [c for c in calls if c.video_status in VideoStatus.TERMINAL and c.video_processing_completed_at.date() == now.date()]
    today = page.locator(f'#spend tr[data-day="{now:%Y-%m-%d}"] td')
    assert int(today.nth(1).inner_text()) == len(ended_today)
    assert today.nth(2).inner_text() == f"${sum(c.fal_cost_usd or 0 for c in ended_today):,.2f}"

    # A failure reason links to its calls: the list shows exactly them.
    reason = "recording is mono: enable dual-channel recording in Twilio"
    row = page.locator("#reasons tr", has=page.locator("a", has_text=reason))
    link = row.locator("a")
    count = int(row.locator("td").nth(1).inner_text())
    expected = [c.id for c in ended if c.video_status in ("failed", "partial") and (c.video_error_message or "")[:100] == reason]
    assert count == len(expected) > 0
    link.click()
    page.wait_for_url(f"{base}/ops/calls?reason=*")
    assert sorted(page.locator("tr.call").evaluate_all("rows => rows.map(r => r.dataset.callId)")) == sorted(
        c.id for c in Call.select() if c.video_status in ("failed", "partial") and (c.video_error_message or "")[:100] == reason
    )
    page.goto("/ops/overview?range=7d")
    assert int(page.inner_text("#total-ended")) == sum(c.video_status in VideoStatus.TERMINAL for c in calls)  # all ended within 2 days
    page.screenshot(path=str(ARTIFACTS / "overview-7d.png"), full_page=True)


@pytest.mark.rabbitmq
@pytest.mark.rabbitmq_management
def test_a_queue_with_messages_and_no_consumer_raises_a_banner_within_one_refresh(serve, browser, own_rabbitmq_url):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    base = serve(RABBITMQ_MANAGEMENT_URL=MANAGEMENT, BROKER_URL=own_rabbitmq_url)
    page = signed_in(browser, base)
    assert page.locator("#banners [data-kind=no-consumers]").count() == 0

    # The generation workers are down: a message waits in their queue and nobody consumes it.
    broker = RabbitmqBroker(url=own_rabbitmq_url)
    try:
        broker.declare_queue("generation")
        broker.enqueue(Message(queue_name="generation", actor_name="generate_side", args=(), kwargs={"call_id": "CA1"}, options={}))
    finally:
        broker.close()

    def banner():
        page.reload()
        found = page.locator("#banners [data-kind=no-consumers]")
        return found.inner_text() if found.count() else None

    # The management API refreshes every 5 s and the banner is kept 5 s: one refresh of the page (30 s) sees it.
    text = wait_for(banner, timeout=30, interval=2, what="the no-consumers banner")
    assert "1 message(s) wait in the generation queue and no worker consumes it" in text
    page.locator("#banners [data-kind=no-consumers] a").click()
    page.wait_for_url(f"{base}/ops/calls?stage=generation")
    assert page.locator("#banners [data-kind=no-consumers]").count() == 1  # every console page shows it
    page.screenshot(path=str(ARTIFACTS / "banner-no-consumers.png"), full_page=True)
