"""The compositor's worker: ``dramatiq services.compositor.actors`` (queue ``compositor``).

This module only declares the actor and what happens when it gives up; the
work is in :mod:`.stage`.
"""

from __future__ import annotations

from shared.runtime import boot

broker = boot("compositor")

from shared.contracts import COMPOSE, on_give_up  # noqa: E402  (actors bind to the broker boot() set up)
from shared.skeleton import actor  # noqa: E402

from . import stage  # noqa: E402

__all__ = ["compose"]


@actor(COMPOSE, max_retries=3, min_backoff=15_000)
def compose(call_id: str, rerender: bool = False) -> None:
    """Render the call's split-screen video, record the outcome, tell the host application."""
    stage.compose(call_id, rerender)


on_give_up(COMPOSE)(stage.give_up)
