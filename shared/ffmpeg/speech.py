"""Where each side speaks, from FFmpeg's ``silencedetect`` log.

The audio stage's split runs one ``silencedetect`` with ``mono=1`` on the
stereo stream, so it judges each channel on its own and tags every line it
logs with the channel: one decode measures both sides. The compositor runs the
same filter for calls whose row lacks the intervals, and reads its log here
too, so both stages agree on what counts as speech. A side's speech is the
complement of its silences within the recording; sounds shorter than
SPEECH_MIN_DURATION (a click on the line) are not speech.

The filter logs each event in two calls, ``channel: N | `` and then
``silence_start: T``. FFmpeg 7 and later run encoders and muxers on threads of
their own (``shared.ffmpeg.version.threaded_cli``), so another thread's
message can land between the two (``channel: 0 | Encoder thread received EOF``
on one line, ``silence_start: 6.51`` on the next). The log is therefore read as
a stream of those two tokens, not line by line: each event belongs to the
channel token just before it.

Times are in seconds from the start of the recording, rounded to 2 decimals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["silencedetect_options", "parse_silences", "speech_intervals", "Interval"]

Interval = tuple[float, float]

# Only silencedetect logs these tokens, whatever the prefix: "[silencedetect @ 0x…]"
# in Debian 12's 5.1, "[Parsed_silencedetect_4 @ 0x…]" in newer releases.
_TOKEN = re.compile(r"channel: (\d+) \| |silence_(start|end): (-?[\d.]+(?:e[-+]?\d+)?)")


def silencedetect_options(threshold_db: float, min_silence: float) -> dict[str, object]:
    """The filter's options: level below which a channel is silent, shortest silence, per channel."""
    return {"noise": f"{threshold_db:g}dB", "duration": f"{min_silence:g}", "mono": 1}


def parse_silences(
    lines: Iterable[str], channels: int = 2, *, offset: float = 0.0
) -> list[list[Interval | tuple[float, None]]]:
    """Each channel's silences from FFmpeg's log; a silence still open at the end has ``None`` as its end.

    ``offset`` is subtracted from every time (the silence the split adds in front).
    """
    silences: list[list[Interval | tuple[float, None]]] = [[] for _ in range(channels)]
    channel: int | None = None
    for line in lines:
        for token in _TOKEN.finditer(line):
            if token[1] is not None:
                channel = int(token[1])
                continue
            owner, channel = channel, None  # one event per channel token
            if owner is None or owner >= channels:
                continue
            kind, value = token[2], float(token[3]) - offset
            found = silences[owner]
            if kind == "start":
                found.append((value, None))
            elif found and found[-1][1] is None:
                found[-1] = (found[-1][0], value)
    return silences


def speech_intervals(
    silences: Iterable[Interval | tuple[float, None]], duration: float, *, min_speech: float = 0.0
) -> list[list[float]]:
    """The stretches of ``[0, duration]`` outside ``silences``, as ``[start, end]`` pairs."""
    speech: list[list[float]] = []
    cursor = 0.0
    for start, end in sorted((max(0.0, s), duration if e is None else min(duration, e)) for s, e in silences):
        if start > cursor:
            speech.append([cursor, start])
        cursor = max(cursor, end)
    if cursor < duration:
        speech.append([cursor, duration])
    return [[round(s, 2), round(e, 2)] for s, e in speech if e - s >= max(min_speech, 0.01)]
