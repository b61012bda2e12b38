"""The benchmark's inputs, made with FFmpeg and espeak-ng and cached between runs.

- :func:`conversation`: a dual-channel call like Twilio's (8 kHz, 32 kb/s MP3,
  caller left, callee right) in which two espeak-ng voices take turns, with
  pauses, over a faint line hiss, so silence detection and the MP3 encoder see
  what they see on a real call. The speech intervals are known by
  construction (they drive the highlight in the compose comparison).
- :func:`side_video`: a fal.ai-like talking head: the shipped avatar PNG with
  a skin/cloth texture that moves with it, a slow head sway (rotate), a drift
  (moving crop), a mouth that opens and closes, and per-frame sensor grain,
  H.264 at CRF 18 with a keyframe a second. A flat colour would flatter every
  encoder; this has texture and motion everywhere, like a real face.

Long inputs are the base clip repeated with stream copy, so a 10-minute side
video costs seconds, not minutes.
"""

from __future__ import annotations

import array
import hashlib
import json
import subprocess
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

from shared.assets import avatar_path

__all__ = ["Conversation", "conversation", "cached_path", "side_video", "looped", "noise_body", "ffmpeg"]

RATE = 8000
CALLER_LINES = (
    "Hello, this is the scheduling assistant calling about your appointment on Thursday.",
    "I can move it to Friday morning at nine, or keep the original time.",
    "Great. I will send a confirmation by text message in a moment.",
    "Is there anything else I can help you with today?",
    "Perfect. The address is the same as last time, on the second floor.",
    "Thank you for your time. Have a wonderful afternoon.",
)
CALLEE_LINES = (
    "Oh hi, yes, I was wondering about that one.",
    "Friday at nine works better for me, actually.",
    "Okay, thanks. Do I need to bring anything?",
    "No, I think that is everything. Where is it again?",
    "Right, got it. See you then.",
    "Thanks, bye.",
)
# Seconds of silence after each turn (the other side thinking, then answering).
GAPS = (0.6, 0.9, 0.4, 1.2, 0.7, 1.6)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def cached_path(cache: Path, kind: str, params: dict, suffix: str) -> tuple[Path, bool]:
    digest = hashlib.sha1(json.dumps({"kind": kind, **params}, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"{kind}-{digest}{suffix}"
    return path, path.exists() and path.stat().st_size > 0


@dataclass(frozen=True)
class Conversation:
    path: Path
    seconds: float
    caller_speech: tuple[tuple[float, float], ...]
    callee_speech: tuple[tuple[float, float], ...]


def _utterance(text: str, voice: str, speed: int, target: Path) -> array.array:
    wav = target.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(wav), "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout
    wav.unlink()
    samples = array.array("h")
    samples.frombytes(raw)
    return samples


# The voices' lines, made once per process: a burst of 50 calls would otherwise run espeak-ng 600 times.
_VOICES: dict[str, list[array.array]] = {}


def _voices(cache: Path) -> tuple[list[array.array], list[array.array]]:
    if not _VOICES:
        _VOICES["caller"] = [_utterance(t, "en-us+m3", 165, cache / f".u-caller-{i}") for i, t in enumerate(CALLER_LINES)]
        _VOICES["callee"] = [_utterance(t, "en-gb+f3", 155, cache / f".u-callee-{i}") for i, t in enumerate(CALLEE_LINES)]
    return _VOICES["caller"], _VOICES["callee"]


def noise_seed(variant: str) -> int:
    """The line hiss's seed for ``variant`` ("": the seed FFmpeg picks by default, as before variants existed)."""
    return zlib.crc32(variant.encode()) if variant else -1


def _turns(seconds: float, cache: Path) -> tuple[list[tuple[str, int, array.array]], float]:
    caller, callee = _voices(cache)
    turns, at, index = [], 0.8, 0
    while at < seconds:
        for side, lines in (("caller", caller), ("callee", callee)):
            samples = lines[index % len(lines)]
            turns.append((side, round(at * RATE), samples))
            at += len(samples) / RATE + GAPS[(index + (side == "callee")) % len(GAPS)]
        index += 1
    return turns, at


def conversation(seconds: float, cache: Path, variant: str = "") -> Conversation:
    """A dual-channel MP3 call of ``seconds``, voices taking turns (cached by length and variant).

    Calls of one length and different ``variant`` speak the same turns at the
    same times (the same speech seconds, the same segments) over a different
    line hiss, so no two of them share a byte of segment audio: generation's
    video cache (keyed by the segment audio's digest) cannot serve one from
    another, and every call a benchmark sends is generated and billed.
    """
    params: dict[str, object] = {"seconds": seconds, "v": 2}
    if variant:
        params["variant"] = variant
    path, hit = cached_path(cache, "call", params, ".mp3")
    speech_file = path.with_suffix(".json")
    if hit and speech_file.exists():
        speech = json.loads(speech_file.read_text())
        return Conversation(path, seconds, tuple(map(tuple, speech["caller"])), tuple(map(tuple, speech["callee"])))

    total = round(seconds * RATE)
    channels = {"caller": array.array("h", bytes(2 * total)), "callee": array.array("h", bytes(2 * total))}
    speech: dict[str, list[tuple[float, float]]] = {"caller": [], "callee": []}
    turns, _ = _turns(seconds, cache)
    for side, start, samples in turns:
        if start >= total:
            break
        piece = samples[: total - start]
        channels[side][start : start + len(piece)] = piece
        speech[side].append((round(start / RATE, 2), round((start + len(piece)) / RATE, 2)))

    stereo = array.array("h", bytes(4 * total))
    stereo[0::2], stereo[1::2] = channels["caller"], channels["callee"]
    pcm = path.with_suffix(".wav")
    with wave.open(str(pcm), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(stereo.tobytes())
    # A faint hiss on both lines, as on a real phone call (never digital silence).
    hiss = f"anoisesrc=r={RATE}:a=0.002:c=pink:d={seconds}:seed={noise_seed(variant)},aformat=channel_layouts=stereo[n]"
    ffmpeg(
        "-i", str(pcm), "-filter_complex", f"{hiss};[0:a][n]amix=inputs=2:normalize=0:duration=first[a]",
        "-map", "[a]", "-c:a", "libmp3lame", "-b:a", "32k", "-ar", str(RATE), str(path),
    )
    pcm.unlink()
    speech_file.write_text(json.dumps(speech))
    return Conversation(path, seconds, tuple(speech["caller"]), tuple(speech["callee"]))


def _talking_head(side: str, width: int, height: int) -> str:
    """The filter chain that animates the avatar into a ``width``×``height`` talking head."""
    big = round(max(width, height) * 1.17) // 2 * 2  # room to sway and drift without showing an edge
    k = big / 512  # the avatar's mouth is at about (256, 280) of 512×512
    mouth = f"drawbox=x={round(206 * k)}:y='{round(280 * k)}-h/2':w={round(100 * k)}:h='{4 * k:.1f}+{22 * k:.1f}*abs(sin(2*PI*t*2.3)*sin(2*PI*t*0.7))':color=0x1e1e1e:t=fill"
    x0, y0 = (big - width) // 2, (big - height) // 2
    drift = min(x0, y0) * 0.45
    sway = "0.035*sin(2*PI*t/3.1)" if side == "caller" else "-0.03*sin(2*PI*t/3.7)"
    return ",".join(
        [
            f"scale={big}:{big}",
            mouth,
            "noise=alls=30:allf=u",  # a fixed texture (skin, cloth), moving with the head
            "gblur=sigma=0.9",
            f"rotate='{sway}'",
            f"crop={width}:{height}:x='{x0}+{drift:.0f}*sin(2*PI*t/4.3)':y='{y0}+{drift * 0.7:.0f}*sin(2*PI*t/5.7)'",
            "noise=alls=4:allf=t+u",  # sensor grain, new every frame
            "format=yuv420p",
        ]
    )


def side_video(side: str, size: str, seconds: float, cache: Path, *, fps: int = 25) -> Path:
    """A fal.ai-like ``size`` talking-head clip of ``side``'s avatar, ``seconds`` long (cached)."""
    width, height = (int(v) for v in size.split("x"))
    path, hit = cached_path(cache, f"side-{side}", {"size": size, "seconds": seconds, "fps": fps, "v": 2}, ".mp4")
    if hit:
        return path
    ffmpeg(
        "-loop", "1", "-framerate", str(fps), "-i", str(avatar_path(side)),
        "-vf", _talking_head(side, width, height), "-t", f"{seconds:g}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(fps), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(path),
    )
    return path


def looped(source: Path, seconds: float, cache: Path) -> Path:
    """``source`` repeated (stream copy) until it lasts ``seconds``."""
    path, hit = cached_path(cache, f"loop-{source.stem}", {"seconds": seconds}, ".mp4")
    if not hit:
        ffmpeg("-stream_loop", "-1", "-i", str(source), "-t", f"{seconds:g}", "-c", "copy", "-movflags", "+faststart", str(path))
    return path


def noise_body(size: int) -> bytes:
    """``size`` bytes for the download test (content does not matter to the download)."""
    block = hashlib.sha512(b"callreel").digest() * 16384  # 1 MiB, not all-zero
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]
