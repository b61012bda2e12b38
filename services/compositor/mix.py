"""The call's sound in the final video: both voices in both ears, at one loudness.

A Twilio recording has the caller in one ear and the callee in the other,
which is tiring on headphones. ``AUDIO_MIX=centered`` turns it into a stereo
mix where both voices reach both ears, each leaning toward its own panel
(``AUDIO_PAN``), and brings it to ``AUDIO_LOUDNESS`` (EBU R128 integrated, as
FFmpeg's ``loudnorm`` measures it) with true peaks at or below
``AUDIO_TRUE_PEAK``. ``AUDIO_MIX=recording`` leaves the recording as it is.

Normalising is two passes, so it is one constant gain, never the dynamic
gain riding that a single loudnorm pass does (audible "pumping"):

1. :func:`measure`, before the render: ``loudnorm`` in analysis mode on the
   recording as it will be mixed (after the pan matrix).
2. :func:`apply`, in the render's graph: the pan matrix, then ``loudnorm``
   with ``linear=true`` and the measured values. loudnorm stays linear only
   under conditions it checks itself (:func:`linear`); when they fail it
   silently goes dynamic, so this module checks them first and, where
   loudnorm would not stay linear, applies the same constant gain itself
   (``volume``) with a lookahead limiter (``alimiter``) only if the gain
   would push peaks past the ceiling. The limiter takes a little loudness
   away; :func:`plan` then measures the limited mix once more and the
   gain makes up the difference.

The ceiling is AUDIO_TRUE_PEAK less ENCODER_HEADROOM: what is held is the
mix, what is heard is the AAC encoder's output.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared.ffmpeg import FFmpegError, FFmpegFailed, run, summarise
from shared.settings import Settings

__all__ = [
    "Loudness", "AudioMix", "LoudnessError", "CENTERED", "RECORDING",
    "pan_matrix", "measure", "parse_report", "plan", "linear", "limited", "second_pass", "apply",
]

CENTERED, RECORDING = "centered", "recording"
# loudnorm's largest loudness-range target: a measured range above it keeps loudnorm out of linear mode.
MAX_LRA = 50.0
# dB between AUDIO_TRUE_PEAK and the ceiling the mix is held to. The AAC
# encoder raises peaks, most of all a limited signal's (many peaks at the
# ceiling, each a chance to overshoot it): the headroom keeps the encoded
# file's true peak within AUDIO_TRUE_PEAK (test_mix.py measures it).
ENCODER_HEADROOM = 1.0
# Below this loudnorm reports no integrated loudness worth a gain (its own floor for measured_I's gate).
SILENCE_LUFS = -70.0

# loudnorm's JSON report, printed at the end of the run: one object whose values are quoted numbers.
_REPORT = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.DOTALL)


class LoudnessError(FFmpegError):
    """The loudness of the recording could not be measured (FFmpeg failed or printed no report)."""


@dataclass(frozen=True)
class Loudness:
    """loudnorm's measurement of the mixed recording (its ``input_*`` figures and ``target_offset``)."""

    integrated: float  # LUFS; -inf for a silent recording
    true_peak: float  # dBTP
    lra: float  # LU
    threshold: float  # LUFS, the relative gate
    offset: float  # LU, loudnorm's suggested offset for its second pass

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.integrated) or self.integrated <= SILENCE_LUFS


@dataclass(frozen=True)
class AudioMix:
    """The ``centered`` mix of one render: how to pan, the targets, and what the first pass measured."""

    pan: float  # 0: both voices in the middle … 1: hard-panned as the recording
    caller_channel: int  # the recording's channel that holds the caller (whose panel is on the left)
    target: float  # LUFS
    true_peak: float  # dBTP
    measured: Loudness | None = None  # None: not measured (a pan only)
    makeup: float = 0.0  # dB: what the limiter takes away, given back (:func:`plan`)


def pan_matrix(pan: float, caller_channel: int = 0) -> str:
    """The ``pan`` filter's argument: each voice in both channels, louder on its own panel's side.

    The law is constant power: a voice goes to its own side with gain cos θ and
    to the other with sin θ, θ = (1 − pan)·π/4. So pan 1 is the recording
    (gains 1 and 0), pan 0 puts both voices in the middle (0.707 each), and in
    between the two gains' squares always add up to 1: each voice's energy,
    summed over both channels (what BS.1770 loudness sums), is the recording's
    whatever the pan, so turning AUDIO_PAN moves voices without making them
    louder or quieter. (A linear law, (1 ± pan)/2, would lose up to 3 dB at
    the middle.) The callee is the other channel, leaning right.
    """
    theta = (1.0 - pan) * math.pi / 4
    near, far = f"{math.cos(theta):.6f}", f"{math.sin(theta):.6f}"
    caller, callee = f"c{caller_channel}", f"c{1 - caller_channel}"
    return f"stereo|c0={near}*{caller}+{far}*{callee}|c1={far}*{caller}+{near}*{callee}"


Filter = tuple[str, dict[str, str]]  # a filter's name and options


def _text(filters: list[Filter]) -> str:
    """``filters`` as an ``-af`` chain (the measurement's; none of their values holds a ``:`` or ``,``)."""
    return ",".join(name + "=" + ":".join(f"{k}={v}" for k, v in options.items()) for name, options in filters)


def _pan(mix: AudioMix) -> Filter:
    return "pan", {"args": pan_matrix(mix.pan, mix.caller_channel)}


def _ceiling(mix: AudioMix) -> float:
    return mix.true_peak - ENCODER_HEADROOM


def measure(recording: Path, filters: list[Filter], settings: Settings) -> Loudness:
    """loudnorm's analysis of ``recording`` through ``filters`` (one decode of the audio, no output)."""
    analysis = ("loudnorm", {"print_format": "json"})
    # The report is printed at the info level, at the end: the log goes to a file and is read afterwards.
    args = [settings.ffmpeg_binary, "-hide_banner", "-nostdin", "-nostats", "-i", str(recording)]
    args += ["-vn", "-af", _text([*filters, analysis]), "-f", "null", "-"]
    with tempfile.TemporaryDirectory(prefix="callreel-loudness-") as folder:
        log_file = Path(folder) / "loudnorm.log"
        try:
            run(args, timeout=settings.compose_timeout, what="loudness measurement", stderr=log_file)
        except FFmpegFailed as exc:
            raise LoudnessError(
                f"loudness measurement of {recording.name} failed: {summarise(exc.stderr)}", returncode=exc.returncode, stderr=exc.stderr
            ) from None
        except FFmpegError as exc:
            raise LoudnessError(f"loudness measurement of {recording.name}: {exc}", returncode=exc.returncode, stderr=exc.stderr) from None
        return parse_report(log_file.read_text(errors="replace"))


def parse_report(log: str) -> Loudness:
    """loudnorm's last JSON report in ``log``; LoudnessError when there is none or it is incomplete."""
    found = _REPORT.findall(log)
    if not found:
        raise LoudnessError(f"loudnorm printed no report: {summarise(log)}")
    try:
        report = json.loads(found[-1])
        # float() reads "-inf" (a silent recording) as it is.
        return Loudness(
            integrated=float(report["input_i"]),
            true_peak=float(report["input_tp"]),
            lra=float(report["input_lra"]),
            threshold=float(report["input_thresh"]),
            offset=float(report["target_offset"]),
        )
    except (ValueError, KeyError) as exc:
        raise LoudnessError(f"loudnorm's report is unreadable ({exc!r}): {found[-1]!r}") from None


def plan(settings: Settings, recording: Path, rate: int) -> AudioMix | None:
    """The render's mix: None for AUDIO_MIX=recording, else the centered mix with what it measured.

    One measurement pass; a second one only when the mix needs the limiter,
    whose held-down peaks take some loudness away: the second pass measures
    how much, and the gain makes it up (:attr:`AudioMix.makeup`).
    """
    if settings.audio_mix == RECORDING:
        return None
    mix = AudioMix(
        pan=settings.audio_pan,
        caller_channel=0 if settings.caller_channel == "left" else 1,
        target=settings.audio_loudness,
        true_peak=settings.audio_true_peak,
    )
    mix = dataclasses.replace(mix, measured=measure(recording, [_pan(mix)], settings))
    if limited(mix):
        after = measure(recording, second_pass(mix, rate), settings)
        if not after.silent:
            mix = dataclasses.replace(mix, makeup=round(mix.target - after.integrated, 2))
    return mix


def _gain(mix: AudioMix) -> float:
    assert mix.measured is not None
    return mix.target - mix.measured.integrated


def linear(mix: AudioMix) -> bool:
    """Whether loudnorm's second pass would stay linear: the same test loudnorm makes when it starts.

    It needs every measured value to be a real measurement (not its option
    defaults), the gained true peak under the ceiling, and the measured range
    within the range target (set to the largest allowed, :data:`MAX_LRA`).
    A steady tone measures a range of exactly 0, which loudnorm takes for
    "not measured": such a recording gets the plain gain instead.
    """
    m = mix.measured
    if m is None or m.silent:
        return False
    real = m.true_peak != 99 and m.threshold != -70 and m.lra != 0 and m.integrated != 0
    return real and m.true_peak + _gain(mix) <= _ceiling(mix) and m.lra <= MAX_LRA


def limited(mix: AudioMix) -> bool:
    """Whether the gain to the target pushes the true peak past the ceiling: the limiter's case."""
    m = mix.measured
    return m is not None and not m.silent and m.true_peak + _gain(mix) > _ceiling(mix)


def second_pass(mix: AudioMix, rate: int) -> list[Filter]:
    """The render's audio filters: the pan matrix, then one constant gain (and a limiter if it must).

    ``rate``: the output's sample rate, where the limiter (when one is
    needed) works, so the peaks it holds are those the encoder gets.
    """
    filters = [_pan(mix)]
    m = mix.measured
    if m is None or m.silent:
        # A silent call measures -inf LUFS: the gain to the target would be
        # infinite, and there is nothing to hear anyway. It stays as it is.
        return filters
    if linear(mix):
        return [
            *filters,
            (
                "loudnorm",
                {
                    "I": f"{mix.target:g}",
                    "TP": f"{_ceiling(mix):g}",
                    "LRA": f"{MAX_LRA:g}",
                    "measured_I": f"{m.integrated:g}",
                    "measured_TP": f"{m.true_peak:g}",
                    "measured_LRA": f"{m.lra:g}",
                    "measured_thresh": f"{m.threshold:g}",
                    "offset": f"{m.offset:g}",
                    "linear": "true",
                    "print_format": "none",
                },
            ),
        ]
    # loudnorm would go dynamic: the same constant gain by hand, and a limiter
    # for the peaks it pushes past the ceiling (speech is peaky: at -16 LUFS
    # its peaks often pass -1.5 dBTP). ``level`` off: alimiter would otherwise
    # raise the whole signal back to full scale.
    filters.append(("volume", {"volume": f"{_gain(mix) + mix.makeup:.2f}dB"}))
    if not limited(mix):
        return filters
    limit = f"{10 ** (_ceiling(mix) / 20):.4f}"
    return [*filters, ("aresample", {"out_sample_rate": str(rate)}), ("alimiter", {"limit": limit, "level": "disabled"})]


def apply(audio, mix: AudioMix, rate: int):
    """:func:`second_pass` on an ffmpeg-python audio stream."""
    for name, options in second_pass(mix, rate):
        audio = audio.filter(name, **options)
    return audio
