"""The generation worker end to end: real worker process, PostgreSQL, RabbitMQ, S3 over HTTP, fal.ai's protocol over TLS."""

from __future__ import annotations

import pytest

from services.generation.jobs import url_expiry
from shared import keys
from shared.fal_models import model_for
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus, utcnow
from shared.segments import plan_segments
from shared.settings import load_settings
from tests.services.generation.conftest import FAL_KEY
from tests.support.fake_fal import Behaviour

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

FIVE_MINUTES = model_for("fal-ai/stable-avatar").max_audio_seconds


def segments_of(call_id: str, side: str) -> list[Segment]:
    return list(Segment.select().where((Segment.call_id == call_id) & (Segment.side == side)).order_by(Segment.index))


def test_both_sides_in_parallel(generation):
    fake = generation.fake
    fake.default = Behaviour(queued_polls=2, running_polls=3)
    call_id = generation.add_call(caller=[(0.0, 250.0), (250.0, 420.0)], callee=[(0.0, 420.0)])
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id)

    jobs = fake.accepted()
    assert len(jobs) == 3
    # What fal received: the model's input with working presigned URLs, and the key.
    for job in jobs:
        assert job.endpoint == "fal-ai/stable-avatar"
        assert set(job.input) == {"image_url", "audio_url", "prompt"}
        assert job.image_fetched and job.fetch_error is None
    assert {s["auth"] for s in fake.submissions} == {f"Key {FAL_KEY}"}
    sent = {job.audio_sha for job in jobs}
    assert sent == {generation.sha(data) for data in generation.audio.values()}
    # Both sides were at fal at the same time.
    by_side = {side: [j for j in jobs if f"-{side}-" in j.input["audio_url"]] for side in ("caller", "callee")}
    assert min(j.finished_at for j in by_side["caller"]) > min(j.submitted_at for j in by_side["callee"])
    assert min(j.finished_at for j in by_side["callee"]) > min(j.submitted_at for j in by_side["caller"])

    # Every video streamed into the store under its segment's key.
    for side, count in (("caller", 2), ("callee", 1)):
        rows = segments_of(call_id, side)
        assert [s.state for s in rows] == [SegmentState.COMPLETED] * count
        for s in rows:
            assert s.video_key == keys.segment_video_key(call_id, side, s.index)
            assert generation.object_bytes(s.video_key) == fake.video
            assert s.attempts == 1 and s.fal_request_id and s.progress.startswith("completed")

    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.GENERATED
    assert call.callee_video_url == generation.storage.object_url(keys.segment_video_key(call_id, "callee", 0))
    assert call.caller_video_url is None  # two segments: the compositor lays them out
    assert sorted(call.fal_job_id.split(",")) == sorted(j.request_id for j in jobs)
    assert call.video_status == VideoStatus.GENERATING
    assert call.stage == Stage.COMPOSITOR and call.generation_finished_at
    assert generation.compose_messages() == 1
    # Progress went to the log as it happened.
    assert "queue position" in generation.log() and "generating: generated" in generation.log()
    # The shipped avatars were stored once and passed by presigned URL.
    assert all("/avatars/" in job.input["image_url"] and "Signature=" in job.input["image_url"] for job in jobs)
    # Both inputs signed as S3 checks (the fake verified each before fetching) and valid for as long as the job may wait and run.
    expiry = str(url_expiry(load_settings(generation.env)))
    assert all(job.url_params[name]["X-Amz-Expires"] == expiry for job in jobs for name in ("image_url", "audio_url"))


def test_retries_timeouts_and_refusals(generation):
    """A failed job and a stuck one are retried (the stuck one cancelled at fal); refusals are not retried."""
    fake = generation.fake
    quick = dict(queued_polls=0, running_polls=0)  # ends at the first poll
    # Call A: the caller's first job fails after two 429s on submit and on status, the second never
    # finishes (cancelled at the timeout), the third works; the callee is refused at submit (422).
    # The caller's segment is short enough that its scaled timeout (0.5 s × the model's compute
    # ratio × TIMEOUT_SAFETY) is FAL_JOB_TIMEOUT itself.
    a = generation.add_call(caller=[(0.0, 0.5)], callee=[(0.0, 30.0)])
    fake.script(f"{a}-caller-000", [
        Behaviour(outcome="error", submit_429=2, status_429=2, **quick),
        Behaviour(outcome="never", queued_polls=0),
        Behaviour(**quick),
    ])
    fake.script(f"{a}-callee-000", [Behaviour(reject=422)])
    # Call B: the caller fails every time (1 + FAL_MAX_RETRIES attempts); the callee's job fails
    # with a validation error from the model (422 at the result), which is not retried either.
    b = generation.add_call(caller=[(0.0, 30.0)], callee=[(0.0, 30.0)])
    fake.script(f"{b}-caller-000", [Behaviour(outcome="error", **quick)] * 5)
    fake.script(f"{b}-callee-000", [Behaviour(outcome="invalid", **quick)])

    # Call C: a job that waits in fal's queue for longer than the timeout is not timed out: it has
    # not started (the timeout counts from when fal runs it).
    c = generation.add_call(caller=[(0.0, 30.0)], callee=None)
    fake.script(f"{c}-caller-000", [Behaviour(queued_polls=7, running_polls=1)])

    generation.worker(FAL_JOB_TIMEOUT="4", FAL_MAX_RETRIES="2")
    for call_id in (a, b, c):
        generation.generate(call_id)
    call_a, call_b, call_c = generation.composed(a), generation.composed(b), generation.composed(c)

    def jobs_for(call_id, side):
        return [j for j in fake.accepted() if f"{call_id}-{side}-000" in j.input["audio_url"]]

    # A's caller: three jobs; the stuck one was cancelled; the third one's video is stored.
    caller = segments_of(a, "caller")[0]
    jobs = jobs_for(a, "caller")
    assert len(jobs) == 3 and caller.attempts == 3
    assert caller.state == SegmentState.COMPLETED and generation.object_bytes(caller.video_key) == fake.video
    assert fake.cancels == [jobs[1].request_id]
    assert caller.fal_request_id == jobs[2].request_id
    assert call_a.caller_state == SideState.GENERATED
    assert sorted(call_a.fal_job_id.split(",")) == sorted(j.request_id for j in jobs)
    # The 429s were absorbed as transient: the same behaviour was retried, no attempt spent on them.
    assert [s["status"] for s in fake.submissions if f"{a}-caller-000" in s["input"]["audio_url"]][:3] == [429, 429, 200]
    # A's callee: refused once, never sent again.
    callee = segments_of(a, "callee")[0]
    assert [s["status"] for s in fake.submissions if f"{a}-callee-000" in s["input"]["audio_url"]] == [422]
    assert callee.state == SegmentState.FAILED and callee.attempts == 1
    assert "not retried" in callee.error and "Audio is longer than the model accepts" in callee.error
    assert call_a.callee_state == SideState.FAILED and "segment 0" in call_a.callee_error

    # B's caller: 1 + FAL_MAX_RETRIES jobs, then the side failed with the reason.
    caller_b = segments_of(b, "caller")[0]
    assert len(jobs_for(b, "caller")) == 3 and caller_b.attempts == 3
    assert caller_b.state == SegmentState.FAILED and "Runner crashed" in caller_b.error
    assert call_b.caller_state == SideState.FAILED and "Runner crashed" in call_b.caller_error
    callee_b = segments_of(b, "callee")[0]
    assert len(jobs_for(b, "callee")) == 1 and callee_b.state == SegmentState.FAILED
    assert "not retried" in callee_b.error
    # C's job waited, then ran: one attempt, no cancel.
    caller_c = segments_of(c, "caller")[0]
    assert caller_c.state == SegmentState.COMPLETED and caller_c.attempts == 1
    assert caller_c.started_at > caller_c.submitted_at and call_c.caller_state == SideState.GENERATED
    assert len(fake.cancels) == 1
    # Every call goes on to the compositor (A and B as partial), once each.
    assert call_a.stage == call_b.stage == call_c.stage == Stage.COMPOSITOR
    assert generation.compose_messages() == 3


def test_twelve_minute_side_with_a_five_minute_model(generation):
    """A 12-minute side becomes three jobs no longer than the model takes, cut in silences."""
    speech = [(t, t + 6.0) for t in range(1, 715, 14)]  # talks 6 s, then listens 8 s
    plan = plan_segments(720.0, speech, mode="full", max_seconds=FIVE_MINUTES)
    call_id = generation.add_call(caller=plan, callee=None)
    generation.worker()
    generation.generate(call_id)
    call = generation.composed(call_id)

    rows = segments_of(call_id, "caller")
    assert len(rows) == 3 and all(s.state == SegmentState.COMPLETED for s in rows)
    assert rows[0].start == 0 and rows[-1].end == 720.0
    assert all(s.end - s.start <= FIVE_MINUTES for s in rows)
    assert len(generation.fake.accepted()) == 3
    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.SILENT
    assert generation.compose_messages() == 1


def test_speech_mode_sends_only_speech(generation):
    """In speech mode only the stretches where a side speaks go to fal; a silent side sends nothing."""
    speech = [(12.0, 15.5), (16.0, 19.0), (70.0, 74.0), (150.0, 151.0)]
    plan = plan_segments(180.0, speech, mode="speech", max_seconds=FIVE_MINUTES, padding=0.3)
    call_id = generation.add_call(caller=plan, callee=None)
    generation.worker(GENERATION_MODE="speech")
    generation.generate(call_id)
    call = generation.composed(call_id)

    jobs = generation.fake.accepted()
    sent = sorted(job.audio_sha for job in jobs)
    expected = sorted(generation.sha(generation.audio[keys.segment_audio_key(call_id, "caller", i)]) for i in range(len(plan)))
    assert sent == expected and len(jobs) == 3
    seconds = sum(s.end - s.start for s in segments_of(call_id, "caller"))
    assert seconds < 20  # of a 180 s side
    assert all("-callee-" not in job.input["audio_url"] for job in jobs)
    assert call.caller_state == SideState.GENERATED and call.callee_state == SideState.SILENT


def test_cache_hit_sends_nothing(generation):
    """A segment whose audio, model, avatar and settings match an earlier video reuses it."""
    same = b"ID3 the very same words " * 300
    first = generation.add_call(caller=[(0.0, 12.0)], callee=None, audio={("caller", 0): same})
    generation.worker()
    generation.generate(first)
    generation.composed(first)
    assert len(generation.fake.submissions) == 1

    again = generation.add_call(caller=[(0.0, 12.0)], callee=[(0.0, 12.0)], audio={("caller", 0): same})
    generation.generate(again)
    call = generation.composed(again)
    submitted = [s["input"]["audio_url"] for s in generation.fake.submissions]
    assert len(submitted) == 2 and f"{again}-callee-000" in submitted[1]  # only the new audio went to fal
    cached = segments_of(again, "caller")[0]
    assert cached.state == SegmentState.COMPLETED and cached.attempts == 0 and cached.fal_request_id is None
    assert cached.video_key == keys.segment_video_key(again, "caller", 0)
    assert generation.object_bytes(cached.video_key) == generation.fake.video
    assert "nothing sent to fal.ai" in cached.progress
    assert call.caller_state == SideState.GENERATED
    assert call.caller_video_url == generation.storage.object_url(cached.video_key)
    assert call.fal_job_id == segments_of(again, "callee")[0].fal_request_id


def test_a_retried_call_follows_the_job_already_at_fal(generation, monkeypatch):
    """Poll messages lost (a purged queue): the sweeper's retry picks the running job up again, no second job."""
    import dramatiq

    from shared.retry import retry_call

    fake = generation.fake
    call_id, job = generation.polls_lost(running_polls=15)  # the call would sit until the sweeper comes
    assert job.finished_at is None  # still running at fal

    done = utcnow()  # the stages before generation finished, as the audio stage leaves them
    Call.update(ingest_finished_at=done, audio_finished_at=done).where(Call.id == call_id).execute()
    monkeypatch.setattr(dramatiq, "get_broker", lambda: generation.broker)
    assert retry_call(call_id, force=True) == Stage.GENERATION
    generation.worker()
    call = generation.composed(call_id)

    assert len(fake.accepted()) == 1 and fake.cancels == []
    segment = segments_of(call_id, "callee")[0]
    assert segment.state == SegmentState.COMPLETED and segment.fal_request_id == job.request_id and segment.attempts == 1
    assert generation.object_bytes(segment.video_key) == fake.video
    assert call.callee_state == SideState.GENERATED and call.stage == Stage.COMPOSITOR
