"""The call page follows a call live in headless Chromium: no reload, its parts replaced, polling stops at the end (#28)."""

import pytest

from shared.models import Call, Stage, VideoStatus
from tests.services.ingest.conftest import API_TOKEN
from tests.support.browser import chromium
from tests.support.calls import make_call, sid

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.rabbitmq]


def test_a_call_page_follows_its_call_without_reloading(serve):
    base = serve()
    call = sid(0x11FE)
    make_call(call, video_status=VideoStatus.GENERATING, stage=Stage.GENERATION)
    with chromium() as browser:
        page = browser.new_context(base_url=base).new_page()
        messages: list[str] = []
        page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: messages.append(str(exc)))
        page.goto("/ops/login")
        page.fill("#token", API_TOKEN)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/ops/calls")
        page.goto(f"/ops/calls/{call}")
        page.evaluate("window.__notReloaded = true")
        page.wait_for_function("() => document.body.dataset.live === 'polling'")
        Call.update(video_status=VideoStatus.COMPLETED, stage=Stage.DONE).where(Call.id == call).execute()
        page.wait_for_function("() => document.body.dataset.live === 'settled'", timeout=20_000)
        assert page.evaluate("window.__notReloaded") is True, messages
        assert page.inner_text("#call-status") == "completed" and page.inner_text("#call-stage") == "done"
        assert page.is_visible("#live-ended")
        assert not [m for m in messages if m.startswith("error")], messages
