"""The pipeline table: consistent with the contracts, the models and itself, and what reads it."""

from __future__ import annotations

from dramatiq import Message

from shared import contracts, models, pipeline, progress
from shared.models import SideState, Stage, VideoStatus
from shared.settings import Settings
from tests.support.calls import make_call

CALL = "CA" + "9" * 32


def test_the_stages_in_order():
    assert pipeline.STAGES == (Stage.INGEST, Stage.AUDIO, Stage.GENERATION, Stage.COMPOSITOR)
    assert models.STAGES is pipeline.STAGES  # models names the stages; the order is the table's alone
    assert [pipeline.order(s) for s in pipeline.STAGES] == [0, 1, 2, 3]
    assert pipeline.order(Stage.DONE) == pipeline.order(None) == len(pipeline.STAGES)
    assert progress.stage_order is pipeline.order


def test_each_stage_hands_on_to_the_one_after_it_and_the_last_to_done():
    followers = [r.next for r in pipeline.PIPELINE]
    assert followers == [*pipeline.STAGES[1:], Stage.DONE]
    assert pipeline.later_stages(Stage.GENERATION) == (Stage.GENERATION, Stage.COMPOSITOR)
    assert pipeline.later_stages(Stage.INGEST) == pipeline.STAGES


def test_every_contracts_queue_belongs_to_a_stage_and_every_stage_starts_with_a_contract():
    for contract in contracts.CONTRACTS:
        assert pipeline.row_of_queue(contract.queue_name).contract.queue_name == contract.queue_name
    starting = [r.contract for r in pipeline.PIPELINE]
    assert all(c in contracts.CONTRACTS for c in starting)
    assert len({c.queue_name for c in starting}) == len(starting), "one queue a stage"
    # Every stage's message carries the call id, so the skeleton can begin the stage for it.
    assert all("call_id" in c.params for c in starting)


def test_temp_folder_prefixes_never_match_another_stages_folders():
    prefixes = [r.tmp_prefix for r in pipeline.PIPELINE]
    # The janitor globs ``{prefix}-*``: no prefix may start another's ``{prefix}-``.
    assert all(not b.startswith(f"{a}-") for a in prefixes for b in prefixes if a != b)
    assert len(set(prefixes)) == len(prefixes)


def test_a_message_may_outlast_the_ffmpeg_run_it_bounds():
    settings = Settings()
    assert all(r.time_limit(settings) > 0 for r in pipeline.PIPELINE)
    # Audio and the compositor run FFmpeg within one message (generation only polls fal, a message a look).
    for stage in (Stage.AUDIO, Stage.COMPOSITOR):
        _name, seconds = pipeline.row(stage).quiet_step(settings)
        assert pipeline.row(stage).time_limit(settings) > seconds


def test_the_first_unfinished_stage_follows_the_row(sqlite_db):
    call = make_call(CALL, source="twilio")
    assert pipeline.first_unfinished(call) == Stage.INGEST
    call.source = "local"
    assert pipeline.first_unfinished(call) == Stage.AUDIO
    call.audio_finished_at = call.created_at
    call.caller_state, call.callee_state = SideState.GENERATED, SideState.FAILED
    assert pipeline.first_unfinished(call) == Stage.GENERATION  # a failed side is generated again
    call.callee_state = SideState.SILENT
    assert pipeline.first_unfinished(call) == Stage.COMPOSITOR
    call.compositor_finished_at, call.video_status = call.created_at, VideoStatus.PARTIAL
    assert pipeline.first_unfinished(call) == Stage.COMPOSITOR
    call.video_status = VideoStatus.COMPLETED
    assert pipeline.first_unfinished(call) is None


def test_start_sends_a_stages_messages_from_the_table(stub_broker):
    pipeline.start(Stage.GENERATION, CALL)
    pipeline.start(Stage.COMPOSITOR, CALL)
    generation = [Message.decode(raw) for raw in list(stub_broker.queues["generation"].queue)]
    assert [(m.actor_name, m.kwargs) for m in generation] == [
        ("generate_side", {"call_id": CALL, "side": "caller"}),
        ("generate_side", {"call_id": CALL, "side": "callee"}),
    ]
    [compose] = [Message.decode(raw) for raw in list(stub_broker.queues["compositor"].queue)]
    assert (compose.actor_name, compose.kwargs) == ("compose", {"call_id": CALL})
