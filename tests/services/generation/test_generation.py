"""The generation worker end to end: real worker process, PostgreSQL, RabbitMQ, S3 over HTTP, fal.ai's protocol over TLS."""

from __future__ import annotations

import pytest

from shared import keys
from shared.fal_models import model_for
from shared.models import Call, Segment, SegmentState, SideState, Stage, VideoStatus
from shared.segments import plan_segments
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
