"""Speech mode with packing (#26), through every real process: what fal bills against what the sides say.

A 33 s call whose sides take turns of 4.5–5 s, the other side's turn between:
each side's three turns go to fal as one job of its stretches laid end to end
(the other side's turns left out), the simulator bills that job once, and the
compositor shows each stretch of the job's video at its time in the call, the
idle avatar between. The fake whisper hears the packed audio, and its words
land back on the call's timeline.
"""

from __future__ import annotations

import math
import subprocess
import threading

import pytest

from shared import keys
from shared.models import Segment, SideState, TranscriptStatus, VideoStatus
from shared.transcript import parse_transcript
from tests.e2e.checks import is_fal_navy, panel_colour
from tests.support.fake_fal import Simulation
from tests.support.media import tone_call

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

SECONDS = 33.0
CALLER = ((0.5, 5.5), (11.0, 16.0), (21.5, 26.5))
CALLEE = ((6.0, 10.5), (16.5, 21.0), (27.0, 31.5))


def video_maker(folder):
    """A navy stand-in for fal's video, as long as the job's audio (rounded up to a whole second)."""
    made: dict[int, bytes] = {}
    lock = threading.Lock()

    def make(seconds: float) -> bytes:
        whole = max(1, math.ceil(seconds))
        with lock:
            if whole not in made:
                path = folder / f"fal-{whole}.mp4"
                subprocess.run(
                    ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=navy:s=64x64:r=15:d={whole}",
                     "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                    check=True,
                )
                made[whole] = path.read_bytes()
            return made[whole]

    return make


def test_packed_jobs_bill_within_a_tenth_of_the_speech_and_play_at_their_times(pipeline, tmp_path):
    # The audio stage plans the jobs; with no cap to size them to (shared.segments.packed_limit), a side is one job.
    pipeline.restart("audio", GENERATION_MODE="speech", FAL_MAX_CONCURRENT_JOBS="0")
    pipeline.fal.simulate(Simulation(queue_seconds=0, speed=1, time_scale=20))
    pipeline.fal.video_maker = video_maker(tmp_path)
    try:
        body = tone_call(tmp_path / "call.mp3", SECONDS, CALLER, CALLEE, caller_hz=330, callee_hz=990).read_bytes()
        sent = pipeline.send_call(body, RecordingDuration=str(int(SECONDS)))
        call = pipeline.wait_ended_one(sent.call_id)
        bill = pipeline.fal.bill()
    finally:
        pipeline.fal.simulations.clear()
        pipeline.fal.video_maker = None

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert call.caller_state == call.callee_state == SideState.GENERATED
    for side, turns in (("caller", CALLER), ("callee", CALLEE)):
        (segment,) = Segment.select().where((Segment.call_id == sent.call_id) & (Segment.side == side))
        assert segment.pieces is not None and len(segment.pieces) == len(turns), segment.pieces
        for (start, end, _), (said_from, said_to) in zip(segment.pieces, turns, strict=True):
            assert start < said_from < said_to < end and (end - start) - (said_to - said_from) < 0.5
        assert len(pipeline.fal_submissions(sent.call_id, side)) == 1

    # What the simulator billed for this call's two jobs, against the seconds the sides speak.
    ours = {s["request_id"] for s in pipeline.fal_submissions(sent.call_id)}
    billed = sum(r["seconds"] for r in bill["records"] if r["request_id"] in ours)
    speech = sum(b - a for a, b in (*CALLER, *CALLEE))
    assert len([r for r in bill["records"] if r["request_id"] in ours]) == 2
    assert billed <= 1.1 * speech, (billed, speech)

    # Each side's panel shows fal's (navy) video while it speaks and its idle avatar while the other side does.
    video = tmp_path / "final.mp4"
    video.write_bytes(pipeline.object_bytes(keys.video_key(sent.call_id)))
    for at, caller_talks in ((3.0, True), (8.0, False), (13.5, True), (18.5, False), (24.0, True), (29.0, False)):
        assert is_fal_navy(panel_colour(video, at, "left")) == caller_talks, (at, panel_colour(video, at, "left"))
        assert is_fal_navy(panel_colour(video, at, "right")) != caller_talks, (at, panel_colour(video, at, "right"))

    # The fake whisper heard the packed audio; its words are back at the turns' times in the call.
    assert call.transcript_status == TranscriptStatus.COMPLETED, pipeline.describe(sent.call_id)
    turns = parse_transcript(pipeline.object_bytes(keys.transcript_key(sent.call_id))).turns
    heard = {side: [(t.start, t.end) for t in turns if t.speaker == side] for side in ("caller", "callee")}
    for side, said in (("caller", CALLER), ("callee", CALLEE)):
        assert len(heard[side]) == len(said), heard
        for (start, end), (said_from, said_to) in zip(heard[side], said, strict=True):
            assert abs(start - said_from) < 0.25 and abs(end - said_to) < 0.25, (side, heard[side])
