"""Every message that crosses a service boundary: its actor, its queue, its arguments.

Services never import each other's code. A service that hands work on calls
``send(SPLIT_CHANNELS, call_id=…)``; the service that does the work declares its
actor with ``@actor(SPLIT_CHANNELS, …)``. Both sides read the names from here,
so a renamed queue or argument breaks loudly in one place.

Arguments travel as keyword arguments (JSON): a redelivered message carries the
same ids, and every actor is written to be idempotent on them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq
from dramatiq import Message

__all__ = [
    "Contract",
    "CONTRACTS",
    "QUEUES",
    "DOWNLOAD_RECORDING",
    "SPLIT_CHANNELS",
    "GENERATE_SIDE",
    "POLL_SEGMENT",
    "POLL_TRANSCRIPT",
    "CANCEL_JOBS",
    "COMPOSE",
    "COMPOSE_CHUNK",
    "PRERENDER",
    "send",
    "actor",
    "on_give_up",
    "give_up_handler",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Contract:
    actor_name: str
    queue_name: str
    params: tuple[str, ...]
    optional: tuple[str, ...] = ()
    doc: str = ""

    def message(self, **kwargs: Any) -> Message:
        missing = [p for p in self.params if p not in kwargs]
        unknown = [k for k in kwargs if k not in self.params and k not in self.optional]
        if missing or unknown:
            raise TypeError(f"{self.actor_name}: missing {missing}, unknown {unknown}")
        return Message(queue_name=self.queue_name, actor_name=self.actor_name, args=(), kwargs=kwargs, options={})


DOWNLOAD_RECORDING = Contract(
    "download_recording", "ingest", ("call_id",), doc="Fetch the Twilio recording into recordings/{callId}.mp3."
)
SPLIT_CHANNELS = Contract(
    "split_channels", "audio", ("call_id",), doc="Validate the recording, split it per side, measure speech."
)
GENERATE_SIDE = Contract(
    "generate_side", "generation", ("call_id", "side"), doc="Plan and submit the fal.ai segments of one side."
)
POLL_SEGMENT = Contract(
    "poll_segment", "generation", ("segment_id",), doc="Check one fal.ai job; re-sent with a delay until it ends."
)
POLL_TRANSCRIPT = Contract(
    "poll_transcript", "generation", ("job_id",), doc="Check one fal.ai speech-to-text job; re-sent with a delay until it ends."
)
CANCEL_JOBS = Contract(
    "cancel_jobs", "generation", ("call_id",), doc="The call ended: cancel its fal.ai jobs, whose results nobody will use."
)
COMPOSE = Contract("compose", "compositor", ("call_id",), optional=("rerender",), doc="Stitch the split-screen video.")

COMPOSE_CHUNK = Contract(
    "compose_chunk", "compositor", ("call_id", "index", "plan"), doc="Render one time chunk of a long call's video (any replica)."
)

PRERENDER = Contract(
    "prerender", "compositor", ("call_id",),
    doc="A long call in generation has new segment videos or words: render the chunks whose inputs are all stored (#26).",
)

CONTRACTS: tuple[Contract, ...] = (
    DOWNLOAD_RECORDING, SPLIT_CHANNELS, GENERATE_SIDE, POLL_SEGMENT, POLL_TRANSCRIPT, CANCEL_JOBS, COMPOSE, COMPOSE_CHUNK, PRERENDER,
)
QUEUES: tuple[str, ...] = tuple(dict.fromkeys(c.queue_name for c in CONTRACTS))


def send(contract: Contract, *, delay_ms: int | None = None, **kwargs: Any) -> Message:
    """Enqueue a message for ``contract`` on the current broker."""
    return dramatiq.get_broker().enqueue(contract.message(**kwargs), delay=delay_ms)


def actor(contract: Contract, **options: Any) -> Callable[[F], dramatiq.Actor]:
    """Declare the actor that fulfils ``contract`` (its name, queue and signature are checked)."""

    def decorator(fn: F) -> dramatiq.Actor:
        params = tuple(inspect.signature(fn).parameters)
        expected = contract.params + contract.optional
        if params != expected:
            raise TypeError(f"{fn.__name__} takes {params}, contract {contract.actor_name} says {expected}")
        return dramatiq.actor(actor_name=contract.actor_name, queue_name=contract.queue_name, **options)(fn)

    return decorator


# What to do when a message has failed for good (retries exhausted or a
# ``throws`` error): registered by the service that owns the actor, run by
# ``shared.broker.GiveUpMiddleware``.
_give_up: dict[str, Callable[[dict[str, Any], BaseException], None]] = {}


def on_give_up(contract: Contract) -> Callable[[F], F]:
    def decorator(fn: F) -> F:
        _give_up[contract.actor_name] = fn
        return fn

    return decorator


def give_up_handler(actor_name: str) -> Callable[[dict[str, Any], BaseException], None] | None:
    return _give_up.get(actor_name)
