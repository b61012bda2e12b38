"""The video's sound (AUDIO_MIX): both voices in both ears at one loudness, or the recording as it is.

Measured on real FFmpeg output, as a listener's meter would: EBU R128
integrated loudness and true peak from FFmpeg's ``ebur128``, and each voice's
level in each channel from its own tone (the caller at 440 Hz, the callee at
1000 Hz), so "both channels carry both voices" is a number per channel.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import ffmpeg as ffmpeg_python
import pytest

from services.compositor.graph import AUDIO_BITRATE, AUDIO_RATE
from services.compositor.mix import (
    ENCODER_HEADROOM,
    AudioMix,
    Loudness,
    LoudnessError,
    apply,
    linear,
    limited,
    pan_matrix,
    parse_report,
    plan,
)
from shared import keys
from shared.settings import load_settings
from tests.support.media import ffmpeg, probe, speech_call, tone_db

CALLER_HZ, CALLEE_HZ = 440, 1000
# Over the target: the AAC encoder's quantisation noise rides on every peak,
# so the encoded file's true peak can land a little above the mix's; the mix
# is held ENCODER_HEADROOM under the limit for that, and this is what is left
# of it on a peaky, limited recording.
AAC_TOLERANCE = 0.3
CALLER_TURNS, CALLEE_TURNS = ((0.2, 1.8), (4.0, 5.0)), ((2.0, 3.8), (5.2, 5.9))


# -- making recordings and measuring what comes out --------------------------


def _gate(turns) -> str:
    return "+".join(f"between(t,{s},{e})" for s, e in turns) or "0"


def tone_recording(path: Path, *, caller_db: float = -12.0, callee_db: float = -18.0, duration: float = 6.0, caller_turns=CALLER_TURNS, callee_turns=CALLEE_TURNS, mono: bool = False) -> Path:
    """A stereo WAV at 8 kHz: the caller's tone on the left, the callee's on the right, taking turns.

    ``*_db``: each tone's peak in dBFS (None: that side is silent). ``mono``: both voices in both channels.
    """
    def voice(hz: int, db: float | None, turns) -> str:
        return "0" if db is None else f"{10 ** (db / 20):.6f}*sin(2*PI*{hz}*t)*({_gate(turns)})"

    caller, callee = voice(CALLER_HZ, caller_db, caller_turns), voice(CALLEE_HZ, callee_db, callee_turns)
    left, right = (f"{caller}+{callee}",) * 2 if mono else (caller, callee)
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{left}|{right}':s=8000:d={duration}", "-c:a", "pcm_s16le", str(path))
    return path


def r128(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) as FFmpeg's ebur128 measures them."""
    log = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-vn", "-af", "ebur128=peak=true", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr
    summary = log[log.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)[1])
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    return integrated, float(peak[1])


def at_loudness(source: Path, lufs: float, target: Path) -> Path:
    """``source`` made ``lufs`` loud (as played: both channels as they are)."""
    measured, _ = r128(source)
    ffmpeg("-i", str(source), "-af", f"volume={lufs - measured:.2f}dB", "-c:a", "pcm_s16le", str(target))
    assert abs(r128(target)[0] - lufs) < 0.3
    return target


def channel(path: Path, index: int, start: float = 0.0, end: float | None = None):
    """One channel's samples at 8 kHz (16-bit), between ``start`` and ``end``."""
    from array import array

    trim = f"atrim=start={start}" + (f":end={end}" if end is not None else "")
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vn", "-af", f"pan=mono|c0=c{index},{trim}", "-ar", "8000", "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout
    samples = array("h")
    samples.frombytes(raw)
    return samples


def voice_levels(path: Path) -> dict[tuple[str, int], float]:
    """Each voice's tone level (dBFS) in each channel, inside that voice's first turn."""
    (caller_start, caller_end), (callee_start, callee_end) = CALLER_TURNS[0], CALLEE_TURNS[0]
    return {
        ("caller", ch): tone_db(channel(path, ch, caller_start + 0.2, caller_end - 0.2), CALLER_HZ) for ch in (0, 1)
    } | {("callee", ch): tone_db(channel(path, ch, callee_start + 0.2, callee_end - 0.2), CALLEE_HZ) for ch in (0, 1)}


def mix_only(recording: Path, output: Path, **env: str) -> tuple[AudioMix | None, Path]:
    """The compositor's sound track alone: its mix (both passes) and its audio encoder options."""
    settings = load_settings(env)
    mix = plan(settings, recording, AUDIO_RATE)
    audio = ffmpeg_python.input(str(recording)).audio
    if mix is not None:
        audio = apply(audio, mix, AUDIO_RATE)
    ffmpeg_python.output(audio, str(output), **{"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}).overwrite_output().run(quiet=True)
    return mix, output


def assert_on_target(path: Path, target: float = -16.0, true_peak: float = -1.5) -> None:
    integrated, peak = r128(path)
    assert abs(integrated - target) <= 1.0, integrated
    assert peak <= true_peak + AAC_TOLERANCE, peak


# -- the pan law and the measurement, without a render ------------------------


def _gains(matrix: str) -> dict[str, dict[str, float]]:
    out = {}
    for term in matrix.split("|")[1:]:
        name, expr = term.split("=")
        out[name] = {c: float(g) for g, c in (part.split("*") for part in expr.split("+"))}
    return out


@pytest.mark.parametrize("pan", [0.0, 0.3, 0.7, 1.0])
def test_the_pan_law_keeps_each_voices_power_whatever_the_pan(pan):
    gains = _gains(pan_matrix(pan))
    for voice in ("c0", "c1"):
        assert math.isclose(gains["c0"][voice] ** 2 + gains["c1"][voice] ** 2, 1.0, abs_tol=1e-5)
    assert gains["c0"]["c0"] >= gains["c1"]["c0"]  # the caller leans left, toward its panel
    if pan == 1.0:
        assert gains == {"c0": {"c0": 1.0, "c1": 0.0}, "c1": {"c0": 0.0, "c1": 1.0}}  # the recording's own channels
    if pan == 0.0:
        assert gains["c0"]["c0"] == gains["c0"]["c1"] == gains["c1"]["c0"]  # both voices in the middle


def test_a_caller_on_the_right_channel_still_leans_toward_the_left_panel():
    gains = _gains(pan_matrix(0.3, caller_channel=1))
    assert gains["c0"]["c1"] > gains["c0"]["c0"] and gains["c1"]["c0"] > gains["c1"]["c1"]


def test_loudnorms_report_is_read_and_a_missing_one_is_an_error():
    log = '[Parsed_loudnorm_1 @ 0x1]\n{\n\t"input_i" : "-inf",\n\t"input_tp" : "-inf",\n\t"input_lra" : "0.00",\n\t"input_thresh" : "-70.00",\n\t"output_i" : "-inf",\n\t"target_offset" : "inf"\n}\n'
    silent = parse_report(log)
    assert silent.silent and silent.integrated == -math.inf
    with pytest.raises(LoudnessError, match="no report"):
        parse_report("Error opening input")
    with pytest.raises(LoudnessError, match="unreadable"):
        parse_report('{ "input_i" : "-20" }')


def test_an_unreadable_recording_is_a_loudness_error(tmp_path):
    bad = tmp_path / "recording.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(LoudnessError, match="loudness measurement of recording.mp3 failed"):
        plan(load_settings({}), bad, AUDIO_RATE)


def test_recording_mode_measures_nothing(tmp_path):
    assert plan(load_settings({"AUDIO_MIX": "recording"}), tmp_path / "not-even-there.wav", AUDIO_RATE) is None


def test_loudnorm_is_asked_for_a_linear_pass_only_when_it_would_stay_linear():
    def mix(**measured) -> AudioMix:
        values = dict(integrated=-30.0, true_peak=-20.0, lra=3.0, threshold=-40.0, offset=0.0) | measured
        return AudioMix(pan=0.3, caller_channel=0, target=-16.0, true_peak=-1.5, measured=Loudness(**values))

    assert linear(mix()) and not limited(mix())
    assert not linear(mix(lra=0.0)) and not limited(mix(lra=0.0))  # a steady tone: plain gain
    ceiling = -1.5 - ENCODER_HEADROOM
    assert linear(mix(true_peak=ceiling - 14.0)) and not linear(mix(true_peak=ceiling - 13.9))
    assert limited(mix(true_peak=-10.0)) and not linear(mix(true_peak=-10.0))
    assert not linear(mix(integrated=-math.inf)) and not limited(mix(integrated=-math.inf))


# -- the mix on real audio ------------------------------------------------------


@pytest.mark.parametrize("lufs", [-35.0, -8.0])
def test_quiet_and_loud_recordings_both_land_on_the_target(tmp_path, lufs):
    recording = at_loudness(tone_recording(tmp_path / "base.wav"), lufs, tmp_path / "rec.wav")
    mix, out = mix_only(recording, tmp_path / "out.m4a")
    assert linear(mix)  # turns of tones: loudnorm's own linear pass
    assert_on_target(out)


def test_a_peaky_quiet_voice_is_raised_and_limited_to_the_target(tmp_path):
    speech = speech_call(tmp_path / "speech.mp3", "Hello, this is the assistant calling about your order from last week.", "Oh hi, yes, I was wondering when it would arrive.")
    recording = at_loudness(speech, -35.0, tmp_path / "quiet-speech.wav")
    mix, out = mix_only(recording, tmp_path / "out.m4a")
    assert limited(mix) and mix.makeup > 0  # speech's peaks: a constant gain and the limiter, never loudnorm's dynamic mode
    assert_on_target(out)


def test_other_targets_are_met_too(tmp_path):
    recording = tone_recording(tmp_path / "rec.wav")
    _, out = mix_only(recording, tmp_path / "out.m4a", AUDIO_LOUDNESS="-23", AUDIO_TRUE_PEAK="-3")
    assert_on_target(out, -23.0, -3.0)


def test_a_silent_side_is_heard_in_both_ears_through_the_other(tmp_path):
    recording = tone_recording(tmp_path / "rec.wav", callee_db=None)
    _, out = mix_only(recording, tmp_path / "out.m4a")
    assert_on_target(out)
    levels = voice_levels(out)
    assert levels[("caller", 0)] > levels[("caller", 1)] > -40
    assert max(levels[("callee", 0)], levels[("callee", 1)]) < -60


def test_a_silent_call_stays_silent_and_still_renders(tmp_path):
    recording = tone_recording(tmp_path / "rec.wav", caller_db=None, callee_db=None)
    mix, out = mix_only(recording, tmp_path / "out.m4a")
    assert mix.measured.silent
    assert r128(out)[0] <= -70


def test_a_mono_ish_call_is_normalised_with_equal_channels(tmp_path):
    recording = tone_recording(tmp_path / "rec.wav", caller_db=-6.0, callee_db=-8.0, mono=True)
    _, out = mix_only(recording, tmp_path / "out.m4a")
    assert_on_target(out)
    levels = voice_levels(out)
    assert abs(levels[("caller", 0)] - levels[("caller", 1)]) < 0.5 and abs(levels[("callee", 0)] - levels[("callee", 1)]) < 0.5


# -- the compositor's render --------------------------------------------------


def _compose_with(calls, s3, tmp_path, recording: Path) -> Path:
    from shared.models import Call
    from shared.settings import get_settings

    from services.compositor.composer import compose_call

    call = calls.call(duration=6.0)
    s3.upload_file(recording, keys.recording_key(call.id), content_type="audio/wav")
    outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)
    assert outcome.status == "completed", outcome.error
    video = tmp_path / "out.mp4"
    s3.download_file(keys.video_key(call.id), video)
    return video


def test_the_centered_mix_puts_both_voices_in_both_ears_leaning_to_their_panels(calls, s3, tmp_path):
    recording = tone_recording(tmp_path / "rec.wav", caller_db=-10.0, callee_db=-22.0)  # voices 12 dB apart

    video = _compose_with(calls, s3, tmp_path, recording)

    audio = next(s for s in probe(video)["streams"] if s["codec_type"] == "audio")
    assert (audio["codec_name"], audio["channels"], int(audio["sample_rate"])) == ("aac", 2, AUDIO_RATE)
    assert_on_target(video)
    levels = voice_levels(video)
    assert min(levels.values()) > -45, levels  # every voice in every channel
    lean = 20 * math.log10(math.cos(0.7 * math.pi / 4) / math.sin(0.7 * math.pi / 4))  # AUDIO_PAN=0.3
    assert abs(levels[("caller", 0)] - levels[("caller", 1)] - lean) < 0.5, levels  # the caller louder on the left
    assert abs(levels[("callee", 1)] - levels[("callee", 0)] - lean) < 0.5, levels
    # The voices keep their balance: one constant gain, no dynamic levelling of the quieter one.
    assert abs(levels[("caller", 0)] - levels[("callee", 1)] - 12.0) < 0.5, levels


def test_recording_mode_keeps_the_caller_in_the_left_ear_only(calls, s3, tmp_path, settings_env):
    settings_env(AUDIO_MIX="recording")
    recording = tone_recording(tmp_path / "rec.wav", caller_db=-10.0, callee_db=-22.0)

    video = _compose_with(calls, s3, tmp_path, recording)

    levels = voice_levels(video)
    assert levels[("caller", 0)] > -14 and levels[("caller", 1)] < -60, levels
    assert levels[("callee", 1)] > -26 and levels[("callee", 0)] < -60, levels
    # Not normalised: the recording's own loudness.
    assert abs(r128(video)[0] - r128(recording)[0]) < 0.5


def test_a_failed_measurement_is_a_stitching_failure_that_keeps_the_side_videos(calls, s3, monkeypatch):
    from services.compositor import mix
    from services.compositor.composer import compose_call
    from shared.models import Call
    from shared.settings import get_settings

    def fails(recording, filters, settings):
        raise LoudnessError("loudness measurement of recording.mp3 failed: boom")

    monkeypatch.setattr(mix, "measure", fails)
    call = calls.call(caller_state="generated", callee_state="local")
    calls.segment(call, "caller", 0, 0.0, 4.0, calls.video("red", "red", duration=4.0))

    outcome = compose_call(Call.get_by_id(call.id), get_settings(), s3)

    assert outcome.status == "partial" and outcome.error.startswith("stitching failed: loudness measurement")
    assert outcome.side_urls["caller"] == s3.object_url(keys.segment_video_key(call.id, "caller", 0))
