"""A long call's compose is shared by two compositor processes, chunk by chunk (services/compositor/chunks.py)."""

from __future__ import annotations

import re

import pytest

from shared import keys
from shared.models import VideoStatus
from tests.e2e.checks import video_facts
from tests.e2e.harness import Worker
from tests.support.fake_fal import Behaviour

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def test_two_compositor_processes_render_one_calls_chunks(pipeline, tmp_path):
    # Two processes of one thread each: a chunk the coordinator did not render was rendered by the other process.
    old = pipeline.workers["compositor"]
    old.stop()
    pipeline.workers["compositor"] = Worker(
        "compositor", pipeline.env("compositor", COMPOSE_CHUNK_SECONDS="2"), old.log_path, threads=1, processes=2
    ).start()
    pipeline.wait_ready()

    seconds = 10.0
    sent = pipeline.send_call(pipeline.recording(seconds), RecordingDuration=str(int(seconds)))
    call = pipeline.wait_ended_one(sent.call_id)
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)

    joined = re.findall(r"chunks joined: (\d+) rendered here, (\d+) by other replicas", pipeline.workers["compositor"].log())
    assert joined, pipeline.logs()
    here, elsewhere = map(int, joined[-1])
    assert here + elsewhere == 5 and elsewhere >= 1, joined
    video = tmp_path / "final.mp4"
    video.write_bytes(pipeline.object_bytes(keys.video_key(sent.call_id)))
    facts = video_facts(video)
    assert abs(facts.duration - seconds) < 0.25, facts
    assert not pipeline.keys("chunks/")  # removed once the video was stored


def test_chunks_whose_segments_are_stored_are_rendered_before_the_fan_in(pipeline, tmp_path):
    """The first segment of each side comes back at once, the others late: chunk 0 is rendered while they run, and joined."""
    for service in ("audio", "generation", "compositor"):  # several segments a side; all plan the same 2 s chunks
        pipeline.restart(service, SEGMENT_MAX_SECONDS="3", COMPOSE_CHUNK_SECONDS="2")
    pipeline.fal.default = Behaviour(queued_polls=1, running_polls=40)  # about 8 s at fal
    for side in ("caller", "callee"):
        pipeline.fal.script(f"-{side}-000", [Behaviour()])

    seconds = 10.0
    sent = pipeline.send_call(pipeline.recording(seconds), RecordingDuration=str(int(seconds)))
    call = pipeline.wait_ended_one(sent.call_id)
    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)

    log = pipeline.workers["compositor"].log()
    assert re.search(r"chunks \[0(, \d+)*\] of \d+ rendered early", log), pipeline.logs()
    early = re.findall(r"rendering in (\d+) chunks of about 2 s \((\d+) rendered early\)", log)
    assert early and int(early[-1][1]) >= 1, early  # joined as rendered: its digest was the final spec's
    video = tmp_path / "final.mp4"
    video.write_bytes(pipeline.object_bytes(keys.video_key(sent.call_id)))
    facts = video_facts(video)
    assert abs(facts.duration - seconds) < 0.25, facts
    assert not pipeline.keys("chunks/")
