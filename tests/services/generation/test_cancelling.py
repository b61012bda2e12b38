"""Nothing at fal.ai is paid for in vain: jobs whose videos can no longer be used are cancelled at once.

The real worker process against the fake fal, which records which jobs ran to
the end (made a video, billed in full) and which were cancelled.
"""

from __future__ import annotations

import pytest

from shared.models import Call, Segment, SegmentState, SideState, VideoStatus
from tests.support.fake_fal import Behaviour
from tests.support.wait import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

QUICK = dict(queued_polls=0, running_polls=0)  # ends at its first poll


def segments_of(call_id: str, side: str) -> list[Segment]:
    return list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == side)).order_by(Segment.index))


def jobs_of(fake, call_id: str, side: str) -> list:
    return [j for j in fake.accepted() if f"{call_id}-{side}-" in j.input["audio_url"]]


def test_a_segment_failing_for_good_cancels_its_sides_other_jobs(generation):
    """The side falls back whole: its other jobs are cancelled (queued or running), not run to the end and thrown away.

    Meanwhile fal misbehaves: the cancellations take a second to take effect,
    and the callee's job meets 503s and dropped connections on its status.
    """
    fake = generation.fake
    fake.cancel_delay = 1.0
    call_id = generation.add_call(caller=[(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)], callee=[(0.0, 30.0)])
    fake.script(f"{call_id}-caller-000", [Behaviour(outcome="invalid", **QUICK)])  # 422: not retried
    fake.script(f"{call_id}-caller-001", [Behaviour(queued_polls=0, running_polls=100)])  # running when cancelled
    fake.script(f"{call_id}-caller-002", [Behaviour(queued_polls=100, running_polls=1)])  # queued when cancelled
    fake.script(f"{call_id}-callee-000", [Behaviour(queued_polls=1, running_polls=5, status_5xx=2, status_drops=2)])
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id, timeout=60)

    assert call.caller_state == SideState.FAILED and call.callee_state == SideState.GENERATED, generation.describe(call_id)
    failed, running, queued = segments_of(call_id, "caller")
    assert failed.state == SegmentState.FAILED and "not retried" in failed.error
    for segment in (running, queued):
        assert segment.state == SegmentState.FAILED and "cancelled: segment 0" in segment.error
    caller_jobs = {j.request_id: j for j in jobs_of(fake, call_id, "caller")}
    assert sorted(fake.cancels) == sorted([running.fal_request_id, queued.fal_request_id])
    cancelled = {running.fal_request_id, queued.fal_request_id}
    wait_for(lambda: all(j.cancelled for j in fake.accepted() if j.request_id in cancelled), timeout=10)
    assert not any(j.made_video for j in caller_jobs.values())  # none ran to the end
    # The callee's job went through the 503s and the dropped connections, once.
    [callee_job] = jobs_of(fake, call_id, "callee")
    assert callee_job.made_video and callee_job.video_downloaded and segments_of(call_id, "callee")[0].attempts == 1
    assert fake.status_5xx_left[callee_job.request_id] == 0 and fake.status_drops_left[callee_job.request_id] == 0
    assert fake.wasted() == []


def test_a_clean_completed_then_a_failing_result_is_a_failed_attempt_retried_at_once(generation):
    """Real fal reports some failures only at the result: the status says COMPLETED, the result answers 500.

    That is the job's failure, not fal being busy: the attempt is counted and
    the segment submitted again at once, not re-fetched until FAL_JOB_TIMEOUT.
    """
    fake = generation.fake
    call_id = generation.add_call(caller=[(0.0, 30.0)], callee=None)
    fake.script(f"{call_id}-caller-000", [Behaviour(outcome="result_error", **QUICK)])
    generation.worker(FAL_JOB_TIMEOUT="120")
    generation.generate(call_id)
    call = generation.composed(call_id, timeout=30)

    [segment] = segments_of(call_id, "caller")
    assert segment.state == SegmentState.COMPLETED and segment.attempts == 2, generation.describe(call_id)
    first, second = jobs_of(fake, call_id, "caller")
    assert segment.fal_request_id == second.request_id and second.video_downloaded
    assert call.caller_state == SideState.GENERATED


def test_a_call_ended_by_the_sweeper_has_its_jobs_cancelled(generation, monkeypatch):
    """Its polls were lost (that is why the sweeper ended it): the CANCEL_JOBS message stops the job at fal."""
    import dramatiq

    from shared import progress

    fake = generation.fake
    call_id, job = generation.polls_lost(running_polls=1000)

    monkeypatch.setattr(dramatiq, "get_broker", lambda: generation.broker)
    assert progress.fail_call(call_id, "Stuck in the generation stage")
    generation.worker()
    wait_for(lambda: job.request_id in fake.cancels, timeout=30, describe=lambda: f"{generation.describe(call_id)}\n{generation.log()}")

    wait_for(lambda: fake.accepted() and job.cancelled, timeout=10)
    assert not job.made_video
    [segment] = segments_of(call_id, "callee")
    assert segment.state == SegmentState.FAILED and "the call ended" in segment.error
    assert Call.get_by_id(call_id).video_status == VideoStatus.FAILED
