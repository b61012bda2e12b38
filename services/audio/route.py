"""A mixed (mono) recording made stereo by who speaks when: the call's supplied transcript.

ElevenLabs' ``post_call_audio`` is the whole conversation in one channel. Its
transcript says who spoke from when (each message's ``time_in_call_secs``), so
the mix is routed, in one FFmpeg run, to two channels the rest of the pipeline
reads like any dual-channel recording::

    [mono] -> asetnsamples (10 ms frames) -> asplit -> volume=<caller's turns> -> FL/FR (the caller's channel)
                                                   -> volume=<callee's turns> -> the other channel

A turn lasts from its start to the next turn's start (the last one to the
end of the audio); during a side's turns its channel carries the mix and the
other channel is silent. ``volume``'s gate is evaluated once per 10 ms frame.

The limit, honest: both parties speaking at once (an interruption, a
backchannel "mm-hm") are both in the mix and land together on the side whose
turn it is; a side's words said outside its turns are heard on the other side.
Turns that start at the same second give both sides the mix for that stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shared.ffmpeg import RECORDING, graph_file_option, input_args, run
from shared.models import SIDES
from shared.settings import Settings

__all__ = ["side_ranges", "gate", "build_graph", "route_command", "route_mono", "NO_TRANSCRIPT"]

NO_TRANSCRIPT = (
    "mono recording without a transcript to split it: this platform sends the conversation as one mixed channel, "
    "and callreel splits it into the two sides by the transcript's turns, but no transcript came with it "
    "(for ElevenLabs, turn on the post_call_transcription webhook besides post_call_audio: docs/platforms.md)"
)
#: Past the end of any recording: the last turn's open end.
FOREVER = 10**7


def side_ranges(turns: Sequence[tuple[str, float]]) -> dict[str, list[tuple[float, float]]]:
    """Each side's time ranges: a turn from its start to the next later start, the last one to the end.

    ``turns`` are (side, start) in any order; a side's touching ranges are merged.
    """
    ordered = sorted((start, side) for side, start in turns if side in SIDES and start >= 0)
    starts = sorted({start for start, _ in ordered})
    ranges: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
    for start, side in ordered:
        later = [s for s in starts if s > start]
        end = later[0] if later else float(FOREVER)
        own = ranges[side]
        if own and own[-1][1] >= start:
            own[-1] = (own[-1][0], max(own[-1][1], end))
        else:
            own.append((start, end))
    return ranges


def gate(ranges: Sequence[tuple[float, float]]) -> str:
    """A ``volume`` expression: 1 inside the ranges (half-open: a boundary belongs to the next turn), 0 outside."""
    if not ranges:
        return "0"
    return "+".join(f"gte(t\\,{a:.3f})*lt(t\\,{b:.3f})" for a, b in ranges)


def build_graph(turns: Sequence[tuple[str, float]], caller_channel: str, sample_rate: int) -> str:
    """The filtergraph: input 0's first audio stream in, ``[routed]`` (stereo) out."""
    ranges = side_ranges(turns)
    left, right = ("caller", "callee") if caller_channel == "left" else ("callee", "caller")
    frame = max(1, sample_rate // 100)
    return (
        f"[0:a:0]aformat=channel_layouts=mono,asetnsamples=n={frame}:p=0,asplit=2[l0][r0];"
        f"[l0]volume=volume={gate(ranges[left])}:eval=frame[l];"
        f"[r0]volume=volume={gate(ranges[right])}:eval=frame[r];"
        "[l][r]join=inputs=2:channel_layout=stereo[routed]"
    )


def route_command(source: Path, target: Path, graph_file: Path, settings: Settings) -> list[str]:
    """FFmpeg reading the graph from a file (a long call's turns make a long graph), writing stereo FLAC: lossless."""
    binary = settings.ffmpeg_binary
    return [
        binary, "-hide_banner", "-nostdin", "-y", *input_args(source, RECORDING),
        graph_file_option(binary), str(graph_file), "-map", "[routed]", "-c:a", "flac", str(target),
    ]  # fmt: skip


def route_mono(source: Path, target: Path, turns: Sequence[tuple[str, float]], sample_rate: int, settings: Settings) -> Path:
    """Write ``target``: ``source``'s mix routed to the caller's and the callee's channels by ``turns``."""
    graph_file = target.with_suffix(".graph")
    graph_file.write_text(build_graph(turns, settings.caller_channel, sample_rate), encoding="utf-8")
    run(route_command(source, target, graph_file, settings), timeout=settings.split_timeout, what="ffmpeg (routing a mono recording)")
    return target
