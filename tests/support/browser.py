"""The browser tests' rig: the ingest app served by gunicorn as deployed, and headless Chromium to drive it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.env import BIN
from tests.support.preconditions import CHROMIUM
from tests.support.processes import stop_group
from tests.support.wait import log_tail, wait_for

__all__ = ["ARTIFACTS", "CHROMIUM", "CHROMIUM_ARGS", "chromium", "gunicorn"]

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots the browser tests leave for a person to look at.
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (playwright's Browser), closed afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def gunicorn(env: dict[str, str], log: Path, base: str) -> Iterator[None]:
    """gunicorn serving the ingest app at ``base`` (deploy/gunicorn.conf.py), until it answers /healthz; no traceback in its log."""
    with open(log, "wb") as out:
        web = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=60, interval=0.2, what="gunicorn to answer /healthz", process=web, describe=log_tail(log))
        yield
    finally:
        stop_group(web)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
