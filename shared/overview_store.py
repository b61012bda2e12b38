"""The overview's rollup: one row per closed hour of call endings, so a week's chart reads 168 rows, not 230 000.

A million calls a month is 230 000 in a week: counting them per hour took
half a second even from an index alone (bench/scale.py). So each hour, once
it has closed, is counted once into ``callreel_overview_hours`` (by the first
overview that needs it: ``services.ingest.web.stats.hours_ended``), and read
from there afterwards; only the hour still open is counted live.

A row counts call *endings* in its hour, their stage times as histogram
buckets (percentiles are read from the buckets, as Prometheus's
``histogram_quantile`` does) and, in ``callreel_overview_reasons``, their
failure reasons. It counts *endings* (``video_processing_completed_at``),
as Prometheus's ``callreel_calls_ended_total`` does: an ending is an event,
which a later retry of the call does not undo, so a closed hour's row never
needs to be made again. The fal.ai spend of those endings is kept beside:
the recorded cost (``fal_cost_usd``) and the generated seconds of calls
without one, which the page turns into an estimate with the model's list price
(a price change then applies to every hour alike).

Its own module and table, beside ``shared.models``: ``shared.migrations``
creates it with the other tables.
"""

from __future__ import annotations

from peewee import CharField, CompositeKey, DateTimeField, FloatField, IntegerField, Model, TextField

from .db import database

__all__ = ["OverviewHour", "OverviewReason"]


class OverviewHour(Model):
    hour = DateTimeField(primary_key=True)  # naive UTC, on the hour
    completed = IntegerField(default=0)
    partial = IntegerField(default=0)
    failed = IntegerField(default=0)
    fal_cost_usd = FloatField(default=0.0)  # recorded costs of the calls that ended in the hour
    fal_seconds = FloatField(default=0.0)  # generated seconds of those without a recorded cost
    # {measure: [calls whose time was ≤ each bound of DURATION_BOUNDS, then all]}: each stage's time
    # and webhook → video of the calls that ended in the hour, cumulative like a Prometheus histogram.
    durations = TextField(default="{}")
    computed_at = DateTimeField()

    class Meta:
        database = database
        table_name = "callreel_overview_hours"


class OverviewReason(Model):
    """Failed and partial calls that ended in a closed hour, per failure reason (the error's first 100 characters)."""

    hour = DateTimeField()
    reason = CharField(max_length=100)
    calls = IntegerField(default=0)

    class Meta:
        database = database
        table_name = "callreel_overview_reasons"
        primary_key = CompositeKey("hour", "reason")
