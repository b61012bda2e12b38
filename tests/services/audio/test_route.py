"""A mixed mono recording (ElevenLabs') routed to two channels by its transcript's turns: real FFmpeg, then the stage."""

from __future__ import annotations

import json
import subprocess
from array import array

import pytest

from services.audio.route import FOREVER, NO_TRANSCRIPT, gate, route_mono, side_ranges
from shared import keys
from shared.models import Call, Stage, TranscriptStatus, VideoStatus
from tests.support import media

from .conftest import CALL_ID

# Alternating turns: the agent (caller, 440 Hz), the user (callee, 880 Hz), the agent again.
CALLER = ((0.1, 0.9), (2.1, 2.9))
CALLEE = ((1.1, 1.9),)
TURNS = [("caller", 0.0), ("callee", 1.0), ("caller", 2.0)]


def mono_mix(tmp_path):
    """The two sides in one channel, as ElevenLabs' post_call_audio has them."""
    stereo = media.tone_call(tmp_path / "sides.wav", 3.0, CALLER, CALLEE)
    mixed = tmp_path / "mix.mp3"
    media.ffmpeg("-i", str(stereo), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "48k", str(mixed))
    assert media.probe(mixed)["streams"][0]["channels"] == 1
    return mixed


def channels(path) -> list[array]:
    """Both channels' samples at 8 kHz, decoded once."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ar", "8000", "-f", "s16le", "-"], check=True, capture_output=True).stdout
    both = array("h")
    both.frombytes(raw)
    return [both[0::2], both[1::2]]


def between(samples: array, start: float, end: float) -> array:
    return samples[int(start * 8000) : int(end * 8000)]


def test_a_turn_lasts_until_the_next_one_starts_and_a_side_s_ranges_merge():
    ranges = side_ranges([("caller", 4.0), ("caller", 0.0), ("caller", 1.5), ("callee", 2.0), ("nobody", 3.0)])
    # 0 → 1.5 → 2 is one range; the last turn runs to the end of the audio; a speaker who is no side is no turn.
    assert ranges == {"caller": [(0.0, 2.0), (4.0, FOREVER)], "callee": [(2.0, 4.0)]}
    assert gate([]) == "0"
    assert gate([(1.0, 2.5)]) == "gte(t\\,1.000)*lt(t\\,2.500)"


@pytest.mark.parametrize("caller_channel", ["left", "right"])
def test_each_side_s_turns_land_in_its_own_channel(tmp_path, settings_env, caller_channel):
    settings = settings_env(CALLER_CHANNEL=caller_channel)
    routed = route_mono(mono_mix(tmp_path), tmp_path / "routed.flac", TURNS, 8000, settings)
    assert media.probe(routed)["streams"][0]["channels"] == 2
    decoded = channels(routed)
    caller, callee = (0, 1) if caller_channel == "left" else (1, 0)
    for side, (start, end) in [("caller", CALLER[0]), ("callee", CALLEE[0]), ("caller", CALLER[1])]:
        own, other = (caller, callee) if side == "caller" else (callee, caller)
        inner = (start + 0.1, end - 0.1)  # the tones are quiet: about -34 dBFS in the mix
        heard = between(decoded[own], *inner)
        speaking, silent = media.level_db(heard), media.level_db(between(decoded[other], *inner))
        assert speaking > -40, f"{side} at {inner}: {speaking:.1f} dBFS on its own channel"
        assert silent < speaking - 50, f"{side} at {inner}: {silent:.1f} dBFS leaks to the other channel"
        hz, not_hz = (440, 880) if side == "caller" else (880, 440)
        assert media.tone_db(heard, hz) > media.tone_db(heard, not_hz) + 20  # it is this side's voice


@pytest.fixture
def db(pg_db):
    return pg_db


def test_the_stage_routes_an_elevenlabs_mono_call_by_its_transcript(db, s3, make_call, split, tmp_path):
    turns = [{"speaker": side, "start": start, "end": start + 1.0, "text": "…"} for side, start in TURNS]
    transcript = tmp_path / "transcript.json"
    transcript.write_text(json.dumps({"turns": turns}))
    s3.upload_file(transcript, keys.transcript_key(CALL_ID), "application/json")
    make_call(mono_mix(tmp_path), source="elevenlabs", recording_format="mp3", transcript_status=TranscriptStatus.SUPPLIED)
    split()
    call = Call.get_by_id(CALL_ID)
    assert (call.stage, call.video_status, call.recording_format) == (Stage.GENERATION, VideoStatus.PENDING, "flac")
    assert [[round(a, 1), round(b, 1)] for a, b in call.caller_speech] == [[0.1, 0.9], [2.1, 2.9]]
    assert [[round(a, 1), round(b, 1)] for a, b in call.callee_speech] == [[1.1, 1.9]]
    stored = tmp_path / "stored.flac"
    s3.download_file(keys.recording_key(CALL_ID, "flac"), stored)  # what the compositor will mix
    assert media.probe(stored)["streams"][0]["channels"] == 2


def test_a_mono_elevenlabs_call_without_a_transcript_fails_with_the_reason(db, s3, make_call, split, tmp_path):
    make_call(mono_mix(tmp_path), source="elevenlabs", recording_format="mp3")
    split()
    call = Call.get_by_id(CALL_ID)
    assert (call.video_status, call.stage) == (VideoStatus.FAILED, Stage.DONE)
    assert call.video_error_message == NO_TRANSCRIPT
    assert NO_TRANSCRIPT.startswith("mono recording without a transcript to split it")
