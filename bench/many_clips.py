"""Composing a call of many short clips a side against two whole-side clips: CPU and wall time, back to back.

``python -m bench.many_clips [--minutes 2] [--repeats 2]`` makes the clips
(FFmpeg ``testsrc``, 512×512 at 25 fps like fal's), then renders the same call
(a) as one whole clip a side, (b) as packed segments of ~5-piece files with
idle gaps between the pieces, an input a piece (the old graph) and (c) the
same with one input a file split into its pieces (the graph now). Each row is
the FFmpeg command ``build_command`` makes, timed with ``getrusage`` of the
child. Figures: docs/compositor.md, section "Speed".
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from services.compositor import Clip, SideSpec, render_command
from shared.ffmpeg import VideoInfo
from shared.settings import load_settings

PIECES = (4.0, 6.0, 8.0, 5.0, 7.0)  # seconds, cycled
GAPS = (3.0, 5.0, 4.0)
PER_FILE = 5


GOP = 250  # frames between keyframes (x264's default); --gop


def _make(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=s=512x512:r=25:d={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-g", str(GOP), "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def _packed(side: str, seconds: float, shift: float, folder: Path) -> tuple[Clip, ...]:
    """Pieces and gaps over the call, ``PER_FILE`` pieces laid end to end in each file."""
    spans, t, n = [], shift, 0
    while True:
        length = PIECES[n % len(PIECES)]
        if t + length > seconds:
            break
        spans.append((t, t + length))
        t += length + GAPS[n % len(GAPS)]
        n += 1
    clips = []
    for first in range(0, len(spans), PER_FILE):
        group = spans[first : first + PER_FILE]
        total = sum(b - a for a, b in group)
        path = _make(folder / f"{side}-{first // PER_FILE:03d}.mp4", total)
        info = VideoInfo(512, 512, 25.0, total)
        offset = 0.0
        for a, b in group:
            clips.append(Clip(path=path, start=a, end=b, info=info, offset=offset))
            offset += b - a
    return tuple(clips)


def _run(command: list[str]) -> tuple[float, float]:
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--per-file", type=int, default=5, help="pieces packed in one file")
    parser.add_argument("--gop", type=int, default=250, help="frames between the clips' keyframes (x264's default: 250)")
    args = parser.parse_args()
    global GOP, PER_FILE  # noqa: PLW0603 - the files' shape, set once from the command line
    GOP, PER_FILE = args.gop, args.per_file
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recording = folder / "call.wav"
        tone = ["-f", "lavfi", "-i", f"sine=f=300:d={seconds}", "-ac", "2", str(recording)]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *tone], check=True)
        whole = {s: (Clip(path=_make(folder / f"{s}-whole.mp4", seconds), start=0.0, end=seconds, info=VideoInfo(512, 512, 25.0, seconds)),)
                 for s in ("caller", "callee")}
        packed = {"caller": _packed("caller", seconds, 0.0, folder), "callee": _packed("callee", seconds, 5.5, folder)}

        # The defaults' encoder (superfast, CRF 21), the sound as recorded: the picture is what is compared.
        settings = replace(load_settings(), audio_mix="recording")

        def command(clips: dict[str, tuple[Clip, ...]], shared: bool) -> list[str]:
            caller, callee = (SideSpec(side=s, label="", avatar=None, clips=clips[s]) for s in ("caller", "callee"))
            return render_command(settings, recording, seconds, caller, callee, folder / "out.mp4", folder, shared_inputs=shared)

        rows = {
            "whole (1 clip a side)": command(whole, True),
            f"pieces, an input a piece ({len(packed['caller'])}+{len(packed['callee'])} clips)": command(packed, False),
            "pieces, an input a file, split": command(packed, True),
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.repeats):
            for name, cmd in rows.items():
                results[name].append(_run(cmd))
        print(f"{args.minutes:g}-minute call, {PER_FILE} pieces a file, keyframe every {GOP} frames")
        print(f"{args.repeats} runs each, interleaved (best wall s / CPU s)")
        for name, runs in results.items():
            print(f"  {name:55s} wall {min(r[0] for r in runs):6.1f}  cpu {min(r[1] for r in runs):6.1f}   all: {runs}")


if __name__ == "__main__":
    main()
