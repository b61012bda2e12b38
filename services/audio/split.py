"""The split: one FFmpeg pass that decodes the recording once and writes both sides.

The filter graph is::

    [recording] -> asplit -> channelsplit -> FL -> side MP3
                          |              -> FR -> side MP3
                          -> adelay, apad -> silencedetect (per channel) -> null

so the recording is read and decoded once, both mono MP3s are encoded in the
same pass, and each side's silences are measured on the way (see ``shared.ffmpeg.speech``).
Memory stays at FFmpeg's frame buffers whatever the length of the call.

The measuring branch gets SILENCE_MIN_DURATION of silence added at both ends:
silencedetect only reports a silence once it has lasted that long, so without
it a side that stops talking 0.3 s before the call ends would be "speaking"
until the end. Its times are shifted back by the same amount.

Durations come from the samples FFmpeg reports having encoded for each output
(``-loglevel verbose``), not from MP3 headers, which round up to whole frames
and, for a truncated file, describe audio that is not there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from shared import disk
from shared.errors import PermanentError, TransientError
from shared.ffmpeg import (
    RECORDING,
    FFmpegFailed,
    file_url,
    input_options,
    parse_silences,
    run,
    silencedetect_options,
    speech_intervals,
)
from shared.models import SIDES
from shared.settings import Settings

from .probe import RecordingInfo

__all__ = ["SideAudio", "Split", "SplitFailed", "channel_of", "build_command", "split_recording", "output_rate", "edge_samples"]

# Sample rates an MP3 can have. A recording at another rate is resampled to the
# next one up; Twilio's 8 kHz recordings are kept as they are.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# LAME's VBR quality (0 best … 9 smallest): transparent for telephone speech.
MP3_QUALITY = 5
# A recording whose header promises much more audio than decodes is truncated or corrupt.
MIN_DECODED_RATIO = 0.5
# ...but an MP3's header counts whole frames plus the encoder's padding: a fraction of a second
# that a very short recording's length cannot be measured against.
HEADER_SLACK = 0.5

_ENCODED = re.compile(r"Output stream #(\d+):\d+ \(audio\): \d+ frames encoded \((\d+) samples\)")
# FFmpeg's words for input it cannot decode (as opposed to a full disk or a crash).
_BAD_INPUT = ("Invalid data found", "Error while decoding", "Decoder (codec", "could not find codec", "not supported")


class SplitFailed(TransientError):
    """FFmpeg failed for a reason that may not recur (retried)."""


@dataclass(frozen=True)
class SideAudio:
    path: Path
    duration: float
    speech: list[list[float]]


@dataclass(frozen=True)
class Split:
    duration: float
    sides: dict[str, SideAudio]


def channel_of(side: str, caller_channel: str) -> int:
    """The channel index (0 = left, 1 = right) that holds ``side``."""
    caller = 0 if caller_channel == "left" else 1
    return caller if side == "caller" else 1 - caller


def output_rate(sample_rate: int) -> int:
    return next((rate for rate in MP3_RATES if rate >= sample_rate), MP3_RATES[-1])


def edge_samples(sample_rate: int, min_silence: float) -> int:
    """Silence added at each end of the measuring branch, in samples (a whole minimum pause)."""
    return math.ceil(min_silence * sample_rate)


def build_command(source: Path, outputs: dict[str, Path], info: RecordingInfo, settings: Settings) -> list[str]:
    """The FFmpeg command that writes each side of ``source`` to ``outputs[side]``."""
    # Decoding stops a second past the maximum, so a file that lies about its
    # length cannot keep FFmpeg busy; the decoded duration is checked after.
    # Opened as what the probe found it to be (MP3 or WAV), from this one file only (shared.ffmpeg.inputs).
    opened = input_options(source, RECORDING)
    recording = ffmpeg.input(file_url(source), t=settings.recording_max_seconds + 1, **opened)["a:0"].filter_multi_output("asplit", 2)
    channels = recording.stream(0).filter_multi_output("channelsplit", channel_layout="stereo")
    encode = {"acodec": "libmp3lame", "ac": 1, "ar": output_rate(info.sample_rate), "q:a": MP3_QUALITY, "map_metadata": -1}
    streams = [
        ffmpeg.output(channels.stream(channel_of(side, settings.caller_channel)), str(outputs[side]), **encode)
        for side in SIDES
    ]
    edge = edge_samples(info.sample_rate, settings.silence_min_duration)
    measured = (
        recording.stream(1)
        .filter("adelay", delays=f"{edge}S", all=1)
        .filter("apad", pad_len=edge)
        .filter("silencedetect", **silencedetect_options(settings.silence_threshold_db, settings.silence_min_duration))
    )
    streams.append(ffmpeg.output(measured, "-", f="null"))  # after the sides: outputs #0 and #1 are theirs
    return (
        ffmpeg.merge_outputs(*streams)
        .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "verbose")
        .compile(cmd=settings.ffmpeg_binary, overwrite_output=True)
    )


def _encoded_samples(log: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    with open(log, errors="replace") as lines:
        for line in lines:
            match = _ENCODED.search(line)
            if match:
                counts[int(match[1])] = int(match[2])
    return counts


def split_recording(source: Path, workdir: Path, info: RecordingInfo, settings: Settings) -> Split:
    """Split ``source`` into one mono MP3 per side in ``workdir`` and measure each side.

    Raises PermanentError when the recording turns out not to decode, SplitFailed
    when FFmpeg fails otherwise, FFmpegTimeout past SPLIT_TIMEOUT.
    """
    outputs = {side: workdir / f"{side}.mp3" for side in SIDES}
    log = workdir / "split.log"
    try:
        run(build_command(source, outputs, info, settings), timeout=settings.split_timeout, stderr=log)
    except FFmpegFailed as exc:
        # No temp paths in the call's row.
        detail = exc.detail.replace(file_url(source), "recording").replace(str(source), "recording").replace(f"{workdir}/", "")
        full = disk.as_no_space(exc, workdir)
        if full is not None:
            raise full from None  # the disk, not the recording
        if any(marker in detail for marker in _BAD_INPUT):
            raise PermanentError(f"recording does not decode: {detail}") from None
        raise SplitFailed(f"ffmpeg could not split the recording: {detail}") from None

    counts = _encoded_samples(log)
    if any(index not in counts for index in range(len(SIDES))):
        raise SplitFailed(f"ffmpeg did not report what it encoded (is FFMPEG_BINARY a real FFmpeg?): {log.name}")
    rate = output_rate(info.sample_rate)
    durations = {side: counts[index] / rate for index, side in enumerate(SIDES)}
    duration = max(durations.values())
    if duration <= 0:
        raise PermanentError("recording does not decode: no audio could be read from it")
    if duration > settings.recording_max_seconds:
        raise PermanentError(
            f"recording is longer than the {settings.recording_max_seconds} s allowed (RECORDING_MAX_SECONDS)"
        )
    if info.duration and duration < info.duration * MIN_DECODED_RATIO and info.duration - duration > HEADER_SLACK:
        raise PermanentError(
            f"recording is truncated or corrupt: its header says {info.duration:.2f} s but only {duration:.2f} s decode"
        )
    if duration < settings.recording_min_seconds:
        # Measured on what decodes: an MP3's header, in whole frames, says more (0.2 s for 50 ms).
        raise PermanentError(
            f"recording is too short: {duration:.2f} s, less than the {settings.recording_min_seconds:g} s minimum"
            " (RECORDING_MIN_SECONDS)"
        )

    offset = edge_samples(info.sample_rate, settings.silence_min_duration) / info.sample_rate
    with open(log, errors="replace") as lines:
        silences = parse_silences(lines, channels=2, offset=offset)
    sides = {
        side: SideAudio(
            path=outputs[side],
            duration=round(durations[side], 3),
            speech=speech_intervals(
                silences[channel_of(side, settings.caller_channel)],
                durations[side],
                min_speech=settings.speech_min_duration,
            ),
        )
        for side in SIDES
    }
    return Split(duration=round(duration, 3), sides=sides)
