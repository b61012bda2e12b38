"""A worker killed with SIGKILL in the middle of its stage: the message comes back, the call finishes once.

SIGKILL goes to the worker's whole process group (the ``dramatiq`` main
process and its worker process), as an OOM kill or a lost machine would: no
shutdown, no ack, no cleanup. RabbitMQ sees the connection close and puts the
unacknowledged message back; the restarted worker gets it again.

To be sure the kill lands mid-stage, the stage is held at a known point: the
ingest download is a slow body from Twilio, and the other stages are held on
an S3 request of theirs at the fault proxy (audio fetching the recording,
generation storing fal's video, the compositor fetching a side video).

What may happen twice, by design, and what may not:

- ingest: the download runs again (the killed one never stored anything);
  the recording is written once and the audio stage is sent one message;
- audio: the split runs again; generation is handed the call once per side
  (``generation_attempts`` stays 2) and nothing is sent to fal twice;
- generation: the killed worker held the delayed poll messages; they come
  back and the finished fal job's video is fetched and stored again (an
  overwrite of the same key). The job itself is not submitted again: a
  segment is submitted only by the UPDATE that moves it out of ``pending``.
  (A kill between fal accepting a job and its id being written, a window of
  one HTTP response, leaves a job callreel does not know: the segment is
  submitted again after FAL_JOB_TIMEOUT. That is the one duplicate the design
  allows.)
- compositor: the compose runs again (the killed one uploaded nothing): the
  final video is written once.
"""

from __future__ import annotations

import shutil
import time

import pytest

from shared import keys
from shared.models import Call, Stage, VideoStatus
from tests.support.s3_proxy import key_is, writes_of
from tests.support.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def held_request(pipeline, service: str, call_id: str):
    """The S3 request the stage is held on (armed before the call is sent)."""
    match = {
        "audio": key_is(keys.recording_key(call_id), "GET"),
        "generation": key_is(keys.segment_video_key(call_id, "caller", 0), "PUT"),
        "compositor": key_is(keys.segment_video_key(call_id, "caller", 0), "GET"),
    }[service]
    return pipeline.proxy.hold(match, seconds=60)


@pytest.mark.parametrize("service", ["ingest", "audio", "generation", "compositor"])
def test_sigkill_in_the_middle_of_a_stage(pipeline, service):
    body = pipeline.recording()
    if service == "ingest":
        pipeline.twilio.slow_seconds = 6.0  # the body trickles in for 6 s: the kill lands mid-download
        sent = pipeline.send_call(body, script=["slow", "ok"], post=False)
        hold = None
    else:
        sent = pipeline.send_call(body, post=False)
        hold = held_request(pipeline, service, sent.call_id)
    try:
        assert pipeline.post_webhook(sent.form).status_code == 202
        if hold is None:
            wait_for(lambda: pipeline.twilio.media_gets(sent.recording), timeout=60, what="the download to start", describe=pipeline.logs)
            time.sleep(1.0)  # a second into the six-second body
        else:
            assert hold.wait_reached(90), f"the {service} stage never reached its S3 request\n{pipeline.describe(sent.call_id)}\n{pipeline.logs()}"
        call = Call.get_by_id(sent.call_id)
        assert call.stage == service and getattr(call, f"{service}_finished_at") is None, pipeline.describe(sent.call_id)

        pipeline.kill(service)
    finally:
        pipeline.twilio.slow_seconds = 1.0
        if hold is not None:
            hold.release()
    pipeline.restart(service)
    call = pipeline.wait_ended_one(sent.call_id)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert call.stage == Stage.DONE
    # The killed stage ran twice (the message came back); every other stage once.
    # Generation begins once per generate_side message (two); the kill there comes later, while
    # polls are in flight, and polls do not begin the stage again.
    expected = {"ingest": 1, "audio": 1, "generation": 2, "compositor": 1}
    if service != "generation":
        expected[service] += 1
    attempts = {s: getattr(call, f"{s}_attempts") for s in expected}
    assert attempts == expected, pipeline.describe(sent.call_id)

    log = pipeline.proxy.log()
    assert writes_of(log, keys.recording_key(sent.call_id)) == 1
    for side in ("caller", "callee"):
        assert writes_of(log, keys.side_audio_key(sent.call_id, side)) == 1
        assert len(pipeline.fal_submissions(sent.call_id, side)) == 1, f"{side} sent to fal again"
    assert writes_of(log, keys.video_key(sent.call_id)) == 1, "composed more than once"
    if service == "ingest":
        assert len(pipeline.twilio.media_gets(sent.recording)) == 2
    if service == "generation":
        # The finished job's video is fetched again by the redelivered poll: the same key, overwritten.
        assert writes_of(log, keys.segment_video_key(sent.call_id, "caller", 0)) in (1, 2)
    assert pipeline.unfinished_uploads() == []

    # Only the killed process's own temp folder (for this call) can be left: nothing cleans up after SIGKILL.
    leftovers = pipeline.temp_leftovers()
    assert all(sent.call_id in p.name and p.parent.name == service for p in leftovers), leftovers
    for path in leftovers:
        shutil.rmtree(path)
