"""What a call costs at fal.ai, and the daily budget (``FAL_DAILY_BUDGET_USD``).

A call's cost is estimated from its segments before any is submitted (the
seconds of video each job asks for: a packed job's pieces added, billed once, at the model's list price in
``shared.fal_models``) and kept in ``calls.fal_cost_usd``; when generation
ends it becomes what the jobs fal completed cost (``fal_cost_final``). Today's
spend is the sum over the calls created since midnight UTC, estimates
included, so calls generating at once count against each other. When a call's
estimate would take it past the budget, its sides get local panels (the side
FAILED with the reason: the call ends ``partial``), nothing is sent to fal,
and ``callreel_fal_budget_exceeded_total`` counts it for the alert.
"""

from __future__ import annotations

import logging

from peewee import fn

from shared import metrics
from shared.fal_models import FalModel, billed_dollars
from shared.models import Call, Segment, SegmentState, Stage, utcnow
from shared.settings import Settings

__all__ = ["estimate", "record_estimate", "over_budget", "finalize", "spent_today"]

log = logging.getLogger("callreel.generation")


def estimate(call_id: str, model: FalModel) -> float:
    """The call's segments at list price, every one sent to fal once."""
    segments = Segment.select(Segment.start, Segment.end, Segment.pieces).where(Segment.call_id == call_id)
    return round(sum(billed_dollars(model, s.seconds) for s in segments), 4)


def record_estimate(call_id: str, model: FalModel) -> float:
    """Store the estimate on the call, once (the first side to get here); the call's cost as recorded."""
    value = estimate(call_id, model)
    Call.update({Call.fal_cost_usd: value, Call.fal_cost_final: False}).where(
        (Call.id == call_id) & Call.fal_cost_usd.is_null()
    ).execute()
    recorded = Call.get_by_id(call_id).fal_cost_usd
    return value if recorded is None else float(recorded)


def spent_today(exclude: str | None = None) -> float:
    """Today's (UTC) fal.ai spend: estimates of calls still generating, final costs of the others."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    query = Call.select(fn.COALESCE(fn.SUM(Call.fal_cost_usd), 0)).where(Call.created_at >= midnight)
    if exclude is not None:
        query = query.where(Call.id != exclude)
    return float(query.scalar() or 0.0)


def over_budget(call_id: str, model: FalModel, settings: Settings) -> str | None:
    """Why the call may not go to fal.ai (its estimate would pass today's budget), or None."""
    cost = record_estimate(call_id, model)
    budget = settings.fal_daily_budget_usd
    if budget <= 0 or cost <= 0:
        return None
    spent = spent_today(exclude=call_id)
    if spent + cost <= budget:
        return None
    return (
        f"fal.ai daily budget reached: this call's estimated ${cost:.2f} on top of today's ${spent:.2f} "
        f"would pass FAL_DAILY_BUDGET_USD (${budget:.2f}); local panels instead"
    )


def fell_back(call_id: str, side: str) -> None:
    """The call spends nothing at fal.ai after all: its cost is 0, and the alert metric counts the side."""
    Call.update({Call.fal_cost_usd: 0.0, Call.fal_cost_final: True}).where(Call.id == call_id).execute()
    metrics.fal_budget_exceeded(side)
    log.warning("over the fal.ai daily budget: %s side gets local panels", side, extra={"call_id": call_id, "stage": Stage.GENERATION})


def finalize(call_id: str, model: FalModel) -> None:
    """Generation has ended: the call's cost is what the jobs fal completed cost (reused videos cost nothing)."""
    done = Segment.select(Segment.start, Segment.end, Segment.pieces).where(
        (Segment.call_id == call_id) & (Segment.state == SegmentState.COMPLETED) & Segment.fal_request_id.is_null(False)
    )
    total = round(sum(billed_dollars(model, s.seconds) for s in done), 4)
    Call.update({Call.fal_cost_usd: total, Call.fal_cost_final: True}).where(
        (Call.id == call_id) & ((Call.fal_cost_final == False) | Call.fal_cost_final.is_null())  # noqa: E712 - SQL
    ).execute()
