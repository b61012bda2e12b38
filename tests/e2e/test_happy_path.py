"""A signed Twilio webhook becomes a split-screen video, through every real process."""

from __future__ import annotations

import pytest

from shared import keys
from shared.models import SideState, Stage, TranscriptStatus, VideoStatus
from shared.transcript import parse_transcript
from tests.e2e.checks import assert_stage_timestamps, channel_hz, is_fal_navy, panel_colour, video_facts
from tests.support.s3_proxy import writes_of

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


def test_a_signed_webhook_becomes_a_two_panel_video_with_the_calls_audio(pipeline, tmp_path):
    seconds = 5.0
    sent = pipeline.send_call(pipeline.recording(seconds), RecordingDuration=str(int(seconds)))
    call = pipeline.wait_ended_one(sent.call_id)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert call.stage == Stage.DONE and call.video_error_message is None
    assert call.caller_state == call.callee_state == SideState.GENERATED
    assert_stage_timestamps(call)
    # Each stage ran once (generation begins once per side's message).
    attempts = (call.ingest_attempts, call.audio_attempts, call.generation_attempts, call.compositor_attempts)
    assert attempts == (1, 1, 2, 1), attempts

    # The recording Twilio served is what was stored; each side went to fal once.
    assert pipeline.object_bytes(keys.recording_key(sent.call_id)) == sent.body
    assert len(pipeline.twilio.media_gets(sent.recording)) == 1
    for side in ("caller", "callee"):
        assert len(pipeline.fal_submissions(sent.call_id, side)) == 1
    assert call.video_url == f"{pipeline.proxy.url}/{pipeline.bucket}/{keys.video_key(sent.call_id)}"

    # The video: two panels side by side, each showing its side's generated (navy) video, over the call's audio.
    video = tmp_path / "final.mp4"
    video.write_bytes(pipeline.object_bytes(keys.video_key(sent.call_id)))
    recording = tmp_path / "recording.mp3"
    recording.write_bytes(sent.body)
    facts = video_facts(video)
    assert (facts.width, facts.height) == (2 * 240, 240)  # the fake fal's square video: square 240×240 panels in the 320×240 box
    assert (facts.video_codec, facts.pixel_format, facts.audio_codec, facts.audio_channels) == ("h264", "yuv420p", "aac", 2)
    assert abs(facts.duration - seconds) < 0.25, facts
    for half in ("left", "right"):
        assert is_fal_navy(panel_colour(video, 2.0, half)), (half, panel_colour(video, 2.0, half))
    # Left channel = caller (speaks first), right = callee (speaks second): the same tones as the recording.
    for channel, start in ((0, 1.0), (1, 3.5)):
        heard, sent_hz = channel_hz(video, channel, start, start + 0.25), channel_hz(recording, channel, start, start + 0.25)
        assert heard == sent_hz, (channel, heard, sent_hz)

    # No transcript was supplied: each side was transcribed (the fake's whisper hears its tone), on the call's timeline.
    assert call.transcript_status == TranscriptStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert call.transcript_url == f"{pipeline.proxy.url}/{pipeline.bucket}/{keys.transcript_key(sent.call_id)}"
    turns = parse_transcript(pipeline.object_bytes(keys.transcript_key(sent.call_id))).turns
    assert [t.speaker for t in turns] == ["caller", "callee"], turns
    (caller_turn, callee_turn) = turns
    assert abs(caller_turn.start - 0.4) < 0.2 and abs(caller_turn.end - seconds * 0.45) < 0.2, caller_turn
    assert abs(callee_turn.start - seconds * 0.55) < 0.2 and abs(callee_turn.end - (seconds - 0.4)) < 0.2, callee_turn

    # Written once, nothing left behind in any worker's temp folder or half-uploaded.
    assert writes_of(pipeline.proxy.log(), keys.video_key(sent.call_id)) == 1
    assert pipeline.temp_leftovers() == []
    assert pipeline.unfinished_uploads() == []

    # The status API (gunicorn, bearer token) says the same.
    answer = pipeline.status(sent.call_id).json()
    assert answer["status"] == "completed" and answer["stage"] == "done"
