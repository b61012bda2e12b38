"""Generated media for tests: stereo calls whose sides a test can tell apart, and side videos.

Everything is made with the real FFmpeg, nothing is downloaded. Tones make
channels measurable (440 Hz on the left, 880 Hz on the right, audible only
inside the given speech intervals); ``speech_call`` uses espeak-ng voices for
realistic recordings when it is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

Interval = tuple[float, float]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def fake_binary(path: str | Path, output: str) -> str:
    """An executable at ``path`` that prints ``output`` whatever it is asked: an FFmpeg's version line or help."""
    path = Path(path)
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\n")
    path.chmod(0o755)
    return str(path)


def probe(path: str | Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def _gate(intervals: Sequence[Interval]) -> str:
    if not intervals:
        return "0"
    return "+".join(f"between(t,{s},{e})" for s, e in intervals)


def tone_call(
    path: str | Path,
    duration: float,
    caller: Sequence[Interval] = ((0.5, 2.0),),
    callee: Sequence[Interval] = ((2.5, 4.0),),
    *,
    caller_hz: int = 440,
    callee_hz: int = 880,
    sample_rate: int = 8000,
) -> Path:
    """A stereo call: left = caller tone inside ``caller`` intervals, right = callee tone inside ``callee``.

    The codec follows the suffix (.mp3, .wav). 8 kHz like Twilio's recordings.
    """
    path = Path(path)
    # 10 ms frames: the gates (evaluated once per frame) open and close within 10 ms of the intervals.
    frame = f"samples_per_frame={max(1, sample_rate // 100)}"
    left = f"sine=f={caller_hz}:r={sample_rate}:d={duration}:{frame},volume='if({_gate(caller)},0.5,0)':eval=frame[l]"
    right = f"sine=f={callee_hz}:r={sample_rate}:d={duration}:{frame},volume='if({_gate(callee)},0.5,0)':eval=frame[r]"
    graph = f"{left};{right};[l][r]join=inputs=2:channel_layout=stereo[a]"
    codec = ["-c:a", "libmp3lame", "-b:a", "32k"] if path.suffix == ".mp3" else ["-c:a", "pcm_s16le"]
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-filter_complex", graph, "-map", "[a]", "-t", str(duration), *codec, str(path))
    return path


def mono_file(path: str | Path, duration: float = 2.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=f=440:r=8000:d={duration}", "-ac", "1", str(path))
    return Path(path)


def speech_call(path: str | Path, caller_text: str, callee_text: str, *, gap: float = 0.6) -> Path:
    """Two espeak-ng voices taking turns: caller on the left, then callee on the right."""
    path = Path(path)
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed")
    work = path.parent
    a, b = work / f".{path.stem}-caller.wav", work / f".{path.stem}-callee.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+m3", "-s", "160", "-w", str(a), caller_text], check=True)
    subprocess.run(["espeak-ng", "-v", "en-gb+f3", "-s", "150", "-w", str(b), callee_text], check=True)
    # Caller speaks first; the callee answers after the caller's turn and a gap.
    length_a = float(probe(a)["format"]["duration"])
    delay_ms = int((length_a + gap) * 1000)
    graph = (
        f"[0:a]aresample=8000,apad[l];"
        f"[1:a]aresample=8000,adelay={delay_ms},apad[r];"
        f"[l][r]join=inputs=2:channel_layout=stereo,atrim=0:{length_a + gap + float(probe(b)['format']['duration']) + 0.5}[m]"
    )
    codec = ["-c:a", "libmp3lame", "-b:a", "32k"] if path.suffix == ".mp3" else ["-c:a", "pcm_s16le"]
    ffmpeg("-i", str(a), "-i", str(b), "-filter_complex", graph, "-map", "[m]", *codec, str(path))
    a.unlink()
    b.unlink()
    return path


def color_video(path: str | Path, color: str, *, size: str = "512x512", fps: int = 25, duration: float = 3.0, audio: bool = False) -> Path:
    """A solid-colour clip (with a moving box so encoders see motion), H.264 like fal's output."""
    src = f"color=c={color}:s={size}:r={fps}:d={duration},drawbox=x='mod(t*80,iw-40)':y=20:w=40:h=40:c=white@0.8:t=fill"
    args = ["-f", "lavfi", "-i", src]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=300:d={duration}", "-c:a", "aac", "-shortest"]
    ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return Path(path)


# -- measuring decoded audio (no numpy: a Goertzel filter per frequency is enough) --


def pcm(path: str | Path, start: float = 0.0, end: float | None = None, *, rate: int = 8000) -> "array":
    """The mono 16-bit samples of ``path`` between ``start`` and ``end`` seconds, decoded by FFmpeg."""
    from array import array

    trim = f"atrim=start={start}" + (f":end={end}" if end is not None else "")
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-af", trim, "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout
    samples = array("h")
    samples.frombytes(raw)
    return samples


def level_db(samples: Sequence[int]) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    import math

    if not samples:
        return float("-inf")
    mean_square = sum(x * x for x in samples) / len(samples)
    return 10 * math.log10(mean_square / 32768**2) if mean_square else float("-inf")


def tone_db(samples: Sequence[int], hz: float, rate: int = 8000) -> float:
    """Level in dBFS of the ``hz`` component of ``samples`` (Goertzel)."""
    import math

    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0.0)
    amplitude = 2 * math.sqrt(power) / max(len(samples), 1)
    return 20 * math.log10(amplitude / 32768) if amplitude else float("-inf")


def dominant_hz(samples: Sequence[int], rate: int = 8000, *, low: int = 100, high: int = 2000, step: int = 10) -> int:
    """The strongest frequency between ``low`` and ``high`` Hz, to ``step`` Hz (use 0.25 s or so of audio)."""
    return max(range(low, high + 1, step), key=lambda hz: tone_db(samples, hz, rate))


class Frame:
    """One decoded video frame as RGB, for asserting what is where on screen."""

    def __init__(self, data: bytes, width: int, height: int) -> None:
        self.data, self.width, self.height = data, width, height

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        at = (y * self.width + x) * 3
        return self.data[at], self.data[at + 1], self.data[at + 2]

    def region(self, x: int, y: int, w: int, h: int) -> list[tuple[int, int, int]]:
        return [self.pixel(i, j) for j in range(y, y + h) for i in range(x, x + w)]


def frame_at(path: str | Path, seconds: float) -> Frame:
    """The frame shown at ``seconds``, decoded to raw RGB24 by FFmpeg."""
    video = next(s for s in probe(path)["streams"] if s["codec_type"] == "video")
    width, height = int(video["width"]), int(video["height"])
    data = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-ss", f"{seconds:.3f}", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout
    assert len(data) == width * height * 3, f"no frame at {seconds}s in {path}"
    return Frame(data, width, height)


def near(colour: Sequence[int], expected: Sequence[int], tolerance: int = 40) -> bool:
    """Colours equal within ``tolerance`` per channel (H.264 and yuv420p move them a little)."""
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))
