"""fal.ai failing: one side (the call is partial), both sides, a job that never finishes (cancelled, retried),
a result that fails after a clean COMPLETED, 503s and dropped connections.

The harness runs generation with FAL_MAX_RETRIES=1: a segment is tried twice.
"""

from __future__ import annotations

import pytest

from shared import keys
from shared.models import Segment, SegmentState, SideState, VideoStatus
from tests.e2e.checks import is_fal_navy, panel_colour, video_facts
from tests.e2e.harness import quick
from tests.support.fake_fal import Behaviour

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

FAILS = Behaviour(outcome="error", queued_polls=0, running_polls=0)


def panels(pipeline, call_id, tmp_path) -> tuple[bool, bool]:
    """(left shows a generated video, right shows one) in the middle of the final video."""
    path = tmp_path / f"{call_id}.mp4"
    path.write_bytes(pipeline.object_bytes(keys.video_key(call_id)))
    facts = video_facts(path)
    # Square panels when a side shows the fake fal's square video, the 320×240 box when neither does.
    assert (facts.width, facts.height) in ((480, 240), (640, 240)), facts
    return is_fal_navy(panel_colour(path, 2.0, "left")), is_fal_navy(panel_colour(path, 2.0, "right"))


def test_fal_failing_one_side_or_both_sides(pipeline, tmp_path):
    """Two calls at once, each meeting its own fal trouble (the fake scripts jobs by call and side):

    - ``one_side``: the caller's job fails twice, so the call is partial, with a local panel for that side;
    - ``both``: both sides fail, and the call is still a video, of two local panels.
    """
    one_side, both = (pipeline.send_call(post=False) for _ in range(2))
    pipeline.fal.script(f"{one_side.call_id}-caller-000", [FAILS, FAILS])
    for side in ("caller", "callee"):
        pipeline.fal.script(f"{both.call_id}-{side}-000", [FAILS, FAILS])
    for sent in (one_side, both):
        assert pipeline.post_webhook(sent.form).status_code == 202
    ended = pipeline.wait_ended([one_side.call_id, both.call_id])

    call = ended[one_side.call_id]
    assert call.video_status == VideoStatus.PARTIAL, pipeline.describe(one_side.call_id)
    assert call.caller_state == SideState.FAILED and call.callee_state == SideState.GENERATED
    assert "Runner crashed" in call.caller_error
    assert "caller video generation failed" in call.video_error_message
    assert len(pipeline.fal_submissions(one_side.call_id, "caller")) == 2  # first try and one retry
    assert len(pipeline.fal_submissions(one_side.call_id, "callee")) == 1
    # The failed side is a local panel; the other shows its generated video.
    assert panels(pipeline, one_side.call_id, tmp_path) == (False, True)
    assert call.compositor_attempts == 1

    call = ended[both.call_id]
    assert call.video_status == VideoStatus.PARTIAL, pipeline.describe(both.call_id)
    assert call.caller_state == call.callee_state == SideState.FAILED
    assert "caller video generation failed" in call.video_error_message
    assert "callee video generation failed" in call.video_error_message
    assert panels(pipeline, both.call_id, tmp_path) == (False, False)
    assert [len(pipeline.fal_submissions(both.call_id, s)) for s in ("caller", "callee")] == [2, 2]
    assert pipeline.temp_leftovers() == []


def test_a_fal_job_that_never_finishes_is_cancelled_and_submitted_again(pipeline):
    pipeline.restart("generation", FAL_JOB_TIMEOUT="3")
    sent = pipeline.send_call(post=False)
    pipeline.fal.script(f"{sent.call_id}-caller-000", [Behaviour(outcome="never", queued_polls=0), quick()])
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    submissions = pipeline.fal_submissions(sent.call_id, "caller")
    assert len(submissions) == 2
    stuck, retried = (s["request_id"] for s in submissions)
    assert stuck in pipeline.fal.cancels  # callreel stopped paying for it
    assert pipeline.fal.jobs[stuck].cancelled
    segment = Segment.get(Segment.call_id == sent.call_id, Segment.side == "caller")
    assert segment.state == SegmentState.COMPLETED and segment.attempts == 2 and segment.fal_request_id == retried
    # Cancelled once it had run past FAL_JOB_TIMEOUT, not before.
    job = pipeline.fal.jobs[stuck]
    assert job.finished_at - job.submitted_at >= 3.0
    assert len(pipeline.fal_submissions(sent.call_id, "callee")) == 1


def test_fal_misbehaving_on_the_wire_costs_one_retry_and_nothing_in_vain(pipeline, tmp_path):
    """A clean COMPLETED whose result answers 500 (caller); 503s and dropped connections on the status (callee)."""
    sent = pipeline.send_call(post=False)
    pipeline.fal.script(f"{sent.call_id}-caller-000", [Behaviour(outcome="result_error", queued_polls=0, running_polls=0), quick()])
    pipeline.fal.script(f"{sent.call_id}-callee-000", [Behaviour(queued_polls=1, running_polls=1, status_5xx=2, status_drops=2)])
    assert pipeline.post_webhook(sent.form).status_code == 202
    call = pipeline.wait_ended_one(sent.call_id)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert [len(pipeline.fal_submissions(sent.call_id, s)) for s in ("caller", "callee")] == [2, 1]
    first, again = pipeline.fal_submissions(sent.call_id, "caller")
    assert again["at"] - first["at"] < 10  # submitted again at once, not after FAL_JOB_TIMEOUT (60 s) of asking for the result
    caller = Segment.get(Segment.call_id == sent.call_id, Segment.side == "caller")
    assert caller.attempts == 2 and caller.state == SegmentState.COMPLETED
    assert [j for j in pipeline.fal.wasted() if sent.call_id in j.input["audio_url"]] == []
    assert panels(pipeline, sent.call_id, tmp_path) == (True, True)
