"""The pipeline, in one table: its stages in order, and for each what starts it and what ends it.

Every other module reads the pipeline from here: ``progress`` (the order a
call moves in), ``retry`` and the sweeper (the first stage not finished, and
the messages that re-start it), ``skeleton`` (which stage follows, each
actor's time limit), the janitor and every service's temp folders (the
prefix). Adding a stage is one row here, its service folder, and the
``{stage}_started_at`` / ``_finished_at`` / ``_attempts`` columns in
``shared/models.py`` (with their migration).

The messages themselves (queue, actor name, arguments) stay in
``shared/contracts.py``, the one place for message contracts: a row names
the contract that starts its stage.

Each stage's temp folders are ``{TMP_DIR}/{prefix}-{callId}-…``, made with
:func:`temp_folder`; so a folder left by a killed worker is traced to its
call, and the janitor (``shared/janitor.py``) clears a stage's leftovers,
older than the stage's time limit, as its worker starts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contracts import COMPOSE, DOWNLOAD_RECORDING, GENERATE_SIDE, SPLIT_CHANNELS, Contract, send
from .models import SIDES, Call, SideState, Stage, TranscriptStatus, VideoStatus
from .settings import Settings

__all__ = [
    "StageRow",
    "PIPELINE",
    "STAGES",
    "row",
    "row_of_queue",
    "order",
    "next_stage",
    "later_stages",
    "first_unfinished",
    "start",
    "temp_folder",
]

#: Time for the transfers around a bounded FFmpeg run (recording in, sides or video out).
SPLIT_TRANSFER_ALLOWANCE = 1800
COMPOSE_TRANSFER_ALLOWANCE = 900
#: A 500 MB recording over a slow link still fits; a stalled one is cut by DOWNLOAD_TIMEOUT long before.
DOWNLOAD_TIME_LIMIT = 30 * 60
#: Dramatiq's own default: a generation message only submits or polls, never waits on fal.
GENERATION_TIME_LIMIT = 10 * 60


@dataclass(frozen=True)
class StageRow:
    """One stage of the pipeline."""

    name: str
    #: The message that starts the stage; its queue is the stage's service's.
    contract: Contract
    #: The stage a call moves to when this one hands on (``Stage.DONE`` after the last).
    next: str
    #: Whether a call's row says this stage's work is done (retry and the sweeper restart from the first that is not).
    finished: Callable[[Call], bool]
    #: Temp folders of this stage are ``{prefix}-{callId}-…`` under TMP_DIR.
    tmp_prefix: str
    #: Seconds one message of this stage may run (Dramatiq's time limit; the janitor's age for leftovers).
    time_limit: Callable[[Settings], int]
    #: The longest step the stage takes without writing to the call's row: (what, seconds), or None.
    #: STAGE_DEADLINE must be longer, or the sweeper re-enqueues a call that is busy (sweeper.check_deadline).
    quiet_step: Callable[[Settings], tuple[str, int]] | None = None
    #: The messages that start the stage for one call: one, or one a side.
    per_side: bool = False

    def messages(self, call_id: str) -> list[dict[str, Any]]:
        if self.per_side:
            return [{"call_id": call_id, "side": side} for side in SIDES]
        return [{"call_id": call_id}]


def _sides_generated(call: Call) -> bool:
    # A FAILED side is terminal but not finished: a retry generates it again. So is a failed
    # transcription (services/generation/stt.py): a retry transcribes again and composes again.
    sides = all(call.side_state(side) in SideState.TERMINAL and call.side_state(side) != SideState.FAILED for side in SIDES)
    return sides and call.transcript_status != TranscriptStatus.FAILED


PIPELINE: tuple[StageRow, ...] = (
    StageRow(
        Stage.INGEST,
        DOWNLOAD_RECORDING,
        next=Stage.AUDIO,
        # A local call (``callreel render``) has its recording stored already: it starts at the audio stage.
        finished=lambda call: bool(call.ingest_finished_at) or call.source == "local",
        tmp_prefix="ingest",
        time_limit=lambda settings: DOWNLOAD_TIME_LIMIT,
    ),
    StageRow(
        Stage.AUDIO,
        SPLIT_CHANNELS,
        next=Stage.GENERATION,
        finished=lambda call: bool(call.audio_finished_at),
        tmp_prefix="audio",
        # The split and the segment cuts each have SPLIT_TIMEOUT of their own (enforced on FFmpeg).
        time_limit=lambda settings: 2 * settings.split_timeout + SPLIT_TRANSFER_ALLOWANCE,
        quiet_step=lambda settings: ("2 × SPLIT_TIMEOUT", 2 * settings.split_timeout),
    ),
    StageRow(
        Stage.GENERATION,
        GENERATE_SIDE,
        next=Stage.COMPOSITOR,
        finished=_sides_generated,
        tmp_prefix="generation",
        time_limit=lambda settings: GENERATION_TIME_LIMIT,
        quiet_step=lambda settings: ("FAL_JOB_TIMEOUT", settings.fal_job_timeout),
        per_side=True,
    ),
    StageRow(
        Stage.COMPOSITOR,
        COMPOSE,
        next=Stage.DONE,
        finished=lambda call: bool(call.compositor_finished_at) and call.video_status == VideoStatus.COMPLETED,
        tmp_prefix="compositor",
        # FFmpeg has COMPOSE_TIMEOUT of its own, plus time for downloads, probes and the upload.
        time_limit=lambda settings: settings.compose_timeout + COMPOSE_TRANSFER_ALLOWANCE,
        quiet_step=lambda settings: ("COMPOSE_TIMEOUT", settings.compose_timeout),
    ),
)

STAGES: tuple[str, ...] = tuple(r.name for r in PIPELINE)
_ROWS = {r.name: r for r in PIPELINE}


def row(stage: str) -> StageRow:
    return _ROWS[stage]


def row_of_queue(queue_name: str) -> StageRow:
    """The stage whose service consumes ``queue_name``."""
    for r in PIPELINE:
        if r.contract.queue_name == queue_name:
            return r
    raise KeyError(f"no stage consumes the queue {queue_name!r}")


def order(stage: str | None) -> int:
    """A stage's place in the pipeline; ``done`` and anything unknown come after every stage."""
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def next_stage(stage: str) -> str:
    return row(stage).next


def later_stages(stage: str) -> tuple[str, ...]:
    """``stage`` and every stage after it."""
    return STAGES[order(stage):]


def first_unfinished(call: Call) -> str | None:
    """The first stage whose work the call's row does not record as done; None when all are."""
    return next((r.name for r in PIPELINE if not r.finished(call)), None)


def start(stage: str, call_id: str, *, delay_ms: int | None = None) -> None:
    """Send the message(s) that start ``stage`` for ``call_id`` (generation: one a side)."""
    r = row(stage)
    for kwargs in r.messages(call_id):
        send(r.contract, delay_ms=delay_ms, **kwargs)


@contextmanager
def temp_folder(stage: str, call_id: str, tmp_dir: Path) -> Iterator[Path]:
    """A fresh ``{prefix}-{callId}-…`` folder for one message's files, gone when the block ends however it ends."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{row(stage).tmp_prefix}-{call_id}-", dir=tmp_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
