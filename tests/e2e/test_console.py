"""The console against the running pipeline, in headless Chromium: a dead letter retried, ten calls re-rendered (#28)."""

from __future__ import annotations

import pytest

from shared import events
from shared.models import Call, VideoStatus
from tests.e2e.harness import API_TOKEN
from tests.support.browser import ARTIFACTS, chromium
from tests.support.wait import wait_for


pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.postgres, pytest.mark.rabbitmq]


def _composed(call_id: str) -> int:
    return sum(1 for e in events.history(call_id) if e["kind"] == "stage.finished" and e["stage"] == "compositor")


def test_an_operator_retries_a_dead_letter_and_rerenders_ten_calls(pipeline):
    calls = [pipeline.send_call(pipeline.recording(2.0), RecordingDuration="2").call_id for _ in range(10)]
    assert all(c.video_status == VideoStatus.COMPLETED for c in pipeline.wait_ended(calls).values())

    # A dead letter: with the compositor down, one more call's compose message is taken off its queue and rejected.
    admin = pipeline.rabbit
    pipeline.stop_worker("compositor")
    stuck = pipeline.send_call(pipeline.recording(2.0), RecordingDuration="2").call_id
    wait_for(lambda: admin.queue("compositor").ready >= 1, timeout=120, what="the compose message to wait in its queue")
    (dead,) = admin.dead_letter("compositor")
    assert dead["kwargs"] == {"call_id": stuck}
    pipeline.restart("compositor")
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        context = browser.new_context(base_url=pipeline.base_url, viewport={"width": 1360, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before a retry
        page.goto("/ops/login")
        page.fill("#token", API_TOKEN)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/ops/overview")  # the console lands on its overview

        # The stuck call's page, open in a second tab, follows the call live: no reload, its parts replaced.
        watcher = context.new_page()
        watcher.on("pageerror", lambda exc: problems.append(str(exc)))
        watcher.goto(f"/ops/calls/{stuck}")
        assert watcher.inner_text("#call-status") == "generating"
        watcher.evaluate("window.__notReloaded = true")
        watcher.wait_for_function("() => document.body.dataset.live === 'polling'")

        page.goto("/ops/dead-letters")
        row = page.locator(f"tr.dead-letter[data-message-id='{dead['message_id']}']")
        assert stuck in row.inner_text() and "compose" in row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "console-dead-letters.png"), full_page=True)
        row.locator("form:has(input[name=action][value=retry]) button").click()
        page.wait_for_url("**/ops/dead-letters?retry=1")
        assert "1 dead letter(s) retried." in page.inner_text("main")
        assert Call.get_by_id(stuck).video_status == VideoStatus.GENERATING  # not ended: its message only waited
        assert pipeline.wait_ended_one(stuck).video_status == VideoStatus.COMPLETED
        watcher.wait_for_function("() => document.body.dataset.live === 'settled'", timeout=60_000)
        assert watcher.evaluate("window.__notReloaded") is True and watcher.inner_text("#call-status") == "completed"
        assert watcher.is_visible("#live-ended") and "Dead letter retried" in watcher.inner_text("#live-events")
        watcher.screenshot(path=str(ARTIFACTS / "console-call-live.png"), full_page=False)
        watcher.close()

        # Bulk re-render: tick the ten, review, confirm; each is composed a second time.
        page.goto("/ops/calls?status=completed")
        for call_id in calls:
            page.check(f"tr.call[data-call-id='{call_id}'] input[type=checkbox]")
        page.select_option("#bulk-action", "rerender")
        page.click("#bulk-review")
        page.wait_for_selector("#bulk-confirm-button")
        assert "10 of 10 call(s) can take this action" in page.inner_text("main")
        page.screenshot(path=str(ARTIFACTS / "console-bulk-confirm.png"), full_page=True)
        page.click("#bulk-confirm-button")
        page.wait_for_selector("#bulk-summary")
        assert "10 of 10 call(s) done, by token" in page.inner_text("#bulk-summary")

        def all_rerendered() -> bool:
            rows = {c.id: c for c in Call.select().where(Call.id.in_(calls))}
            return all(_composed(c) == 2 and rows[c].video_status == VideoStatus.COMPLETED and not rows[c].rerender for c in calls)

        wait_for(all_rerendered, timeout=240, interval=1, what="the ten calls re-rendered", describe=pipeline.logs)
        page.goto("/ops/calls?status=completed")
        page.screenshot(path=str(ARTIFACTS / "console-call-list.png"), full_page=True)
        page.goto(f"/ops/calls/{stuck}")
        history = page.inner_text("#live-events")
        assert "Dead letter retried" in history and "token" in history and "fal.ai job completed" in history
        page.screenshot(path=str(ARTIFACTS / "console-call-history.png"), full_page=True)
        assert problems == []

