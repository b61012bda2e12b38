"""The compositor's worker: ``dramatiq services.compositor.actors`` (queue ``compositor``).

This module only declares the actor and what happens when it gives up; the
work is in :mod:`.stage`.
"""

from __future__ import annotations

from shared.contracts import COMPOSE, COMPOSE_CHUNK, PRERENDER, on_give_up
from shared.runtime import boot
from shared.skeleton import actor

from . import early, stage

__all__ = ["compose", "compose_chunk", "prerender"]

# Before the actors are declared: they bind to the broker boot() makes Dramatiq's.
broker = boot("compositor")


@actor(COMPOSE, max_retries=3, min_backoff=15_000)
def compose(call_id: str, rerender: bool = False) -> None:
    """Render the call's split-screen video, record the outcome, tell the host application."""
    stage.compose(call_id, rerender)


@actor(COMPOSE_CHUNK, max_retries=1, min_backoff=5_000)
def compose_chunk(call_id: str, index: int, plan: str) -> None:
    """Render one time chunk of a long call for the replica composing it (any replica takes any chunk)."""
    stage.compose_chunk(call_id, index, plan)


@actor(PRERENDER, max_retries=0)
def prerender(call_id: str) -> None:
    """Render the chunks of a long call still in generation whose segments are all stored (a cache the compose reuses)."""
    early.prerender(call_id)


on_give_up(COMPOSE)(stage.give_up)
