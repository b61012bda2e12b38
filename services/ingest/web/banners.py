"""What needs a person: the banners at the top of every console page.

Four conditions, each with a link to what to look at (deploy/prometheus/alerts.yml
raises the same four in Prometheus):

- a stage's queue has messages ready and no consumer: that stage's workers are down;
- a dead-letter queue (``*.XQ``) is not empty: messages gave up and wait for a decision;
- calls have sat in one stage longer than STAGE_DEADLINE;
- more than ALERT_FAILURE_RATE of the calls that ended in the last hour failed.

The queue numbers come from RabbitMQ's management API (``shared.queues``, which
keeps an answer for a few seconds); the others are two aggregate queries on
indexed columns. Every page of a signed-in operator shows them, so they are
kept for :data:`CACHE_SECONDS` too: a page load costs no query most of the time,
and a banner shows within one refresh of the page (10 s) of what raised it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.models import utcnow
from shared.queues import QueueReader, QueuesUnavailable
from shared.settings import Settings

from . import stats
from .templating import Markup, escape, join

__all__ = ["Banner", "BannerReader", "install", "current_banners", "DEAD_LETTERS_PATH"]

log = logging.getLogger("callreel.ingest.banners")

CACHE_SECONDS = 5.0
# The dead-letters page (console28a's part of #28) lives here.
DEAD_LETTERS_PATH = "/ops/dead-letters"


@dataclass(frozen=True)
class Banner:
    kind: str  # no-consumers | dead-letters | stuck | failure-rate | queues-unknown
    text: str
    link: str
    link_text: str


class BannerReader:
    def __init__(self, settings: Settings, queues: QueueReader, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.queues = queues
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Banner]] | None = None

    def forget(self) -> None:
        """Drop the cached banners: the next read asks the broker and the database again."""
        with self._lock:
            self._cached = None

    def read(self) -> list[Banner]:
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        banners = [*self._queue_banners(), *self._database_banners(utcnow())]
        with self._lock:
            self._cached = (self._clock(), banners)
        return banners

    def _queue_banners(self) -> list[Banner]:
        if not self.queues.configured:
            return []
        try:
            states = self.queues.stages()
        except QueuesUnavailable as exc:
            return [Banner("queues-unknown", f"The RabbitMQ management API does not answer ({exc}): queue alerts are off.",
                           "/ops/calls", "backlog")]
        found = []
        for stage, state in states.items():
            if state.ready and not state.consumers:
                found.append(Banner(
                    "no-consumers", f"{state.ready} message(s) wait in the {stage} queue and no worker consumes it: "
                    f"the {stage} workers are down.", f"/ops/calls?stage={stage}", f"calls at {stage}",
                ))
        dead = {stage: state.dead for stage, state in states.items() if state.dead}
        if dead:
            listed = ", ".join(f"{stage} {count}" for stage, count in dead.items())
            found.append(Banner(
                "dead-letters", f"Dead-lettered messages wait for a decision ({listed}).", DEAD_LETTERS_PATH, "dead letters",
            ))
        return found

    def _database_banners(self, now: dt.datetime) -> list[Banner]:
        found = []
        deadline = self.settings.stage_deadline
        for stage, count in stats.stuck_calls(now - dt.timedelta(seconds=deadline)).items():
            found.append(Banner(
                "stuck", f"{count} call(s) have been in the {stage} stage longer than STAGE_DEADLINE ({deadline} s).",
                f"/ops/calls?stage={stage}", f"calls at {stage}",
            ))
        failed, ended = stats.failure_rate(now - dt.timedelta(hours=1))
        limit = self.settings.alert_failure_rate
        if ended and failed / ended > limit:
            found.append(Banner(
                "failure-rate", f"{failed} of the {ended} calls that ended in the last hour failed ({failed / ended:.0%}, "
                f"over ALERT_FAILURE_RATE {limit:.0%}).", "/ops/calls?status=failed", "failed calls",
            ))
        return found


_reader: BannerReader | None = None


def install(reader: BannerReader | None) -> None:
    """Make ``reader`` the one every console page asks (the app's Console does, at start)."""
    global _reader
    _reader = reader


def current_banners() -> Markup:
    """The banners as HTML for the page layout; nothing when there are none (or none installed)."""
    if _reader is None:
        return Markup("")
    try:
        banners = _reader.read()
    except Exception:
        # A banner that cannot be read must not take the page down with it.
        log.warning("banners not shown", exc_info=True)
        return Markup("")
    items = [
        Markup(
            f'<div class="banner" role="alert" data-kind="{escape(b.kind)}">{escape(b.text)} '
            f'<a href="{escape(b.link)}">{escape(b.link_text)} →</a></div>'
        )
        for b in banners
    ]
    if not items:
        return Markup("")
    return Markup(f'<section class="banners" id="banners" aria-label="What needs a person">{join(items)}</section>')


def forget_banners() -> None:
    """Drop the installed reader's cache, so the next page reads the banners afresh."""
    if _reader is not None:
        _reader.forget()
