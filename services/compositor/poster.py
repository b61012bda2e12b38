"""The video's poster: one designed still of the call, used three ways.

``videos/{callId}.jpg`` shows both avatars in rings of their side's colour,
the two names under them and the call's date and length, on the background of
the layouts. It is

- the MP4's cover art (a second video stream with the ``attached_pic``
  disposition, which players and file browsers show as the thumbnail),
- the ``<video poster>`` of the operator page and of the share page,
- the share page's ``og:image``, what chat apps show in a link preview.

It is 1200×630, the 1.91:1 size Open Graph and Twitter's large summary card
ask for: chat apps crop any other shape, while a ``<video>`` element letterboxes
a poster of another shape than its video without cutting anything. One picture
fits all three uses.

Drawn by FFmpeg in one run (no image library), the text through files like the
panel labels (``graph._label``): no name can trip drawtext's or the
filtergraph's escaping. Attaching it is a remux (stream copy) of the rendered
MP4, after the render: far cheaper than the render, and it leaves the render
command alone. Nothing here may fail the video: :func:`add_poster` logs any
problem and the call simply has no poster.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from shared import keys
from shared.ffmpeg import FFmpegError
from shared.models import Call
from shared.settings import Settings
from shared.storage import Storage

from .layouts import BACKGROUND
from .panel import CARD_COLOURS, WAVE_COLOUR
from .runner import run_ffmpeg

__all__ = [
    "WIDTH",
    "HEIGHT",
    "PosterText",
    "poster_text",
    "length_text",
    "name_size",
    "build_poster_command",
    "attach_command",
    "add_poster",
]

log = logging.getLogger("callreel.compositor.poster")

WIDTH, HEIGHT = 1200, 630
AVATAR = 300  # the avatar circle's diameter
RING = 10  # the coloured ring around it
# Top to bottom: the date and length, the avatars, the names. The bottom stays
# empty: as a <video poster>, the player's control bar covers it.
FACTS_TOP = 44
AVATAR_TOP = 118
NAME_TOP = AVATAR_TOP + AVATAR + RING + 20
NAME_SIZE = 40  # the largest; a long name gets a smaller size (:func:`name_size`)
FACTS_SIZE = 30
#: Longer names are cut (with an ellipsis): drawtext neither wraps nor shrinks, and each name has half the width.
NAME_MAX_CHARS = 24
#: Each name is drawn in a box this wide, so a name of wide letters is cut at its edge instead of running into the other.
NAME_BOX = (560, 64)
PLATE = "0x1e293b"  # the name plate, a shade lighter than the background
#: An average letter of a bold sans is about this many ems wide: a name of n letters fits NAME_BOX at 560 / (n × this) px.
LETTER_EMS = 0.62
#: A poster is one frame: this bounds a broken input, not the normal case.
TIMEOUT = 60.0
JPEG_QUALITY = 3  # FFmpeg's mjpeg scale, 2 (best) to 31


@dataclass(frozen=True)
class PosterText:
    caller: str
    callee: str
    facts: str  # the date and the length, one line


def _short(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= NAME_MAX_CHARS else name[: NAME_MAX_CHARS - 1].rstrip() + "…"


def length_text(seconds: float | None) -> str:
    """``2:31``, ``1:02:03``; an unknown length is left out."""
    if seconds is None:
        return ""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def poster_text(call: Call, settings: Settings, duration: float | None) -> PosterText:
    """The words on the poster: the call's own names (else the labels), its date (UTC) and length."""
    when: dt.datetime | None = call.created_at
    date = f"{when.day} {when:%b %Y · %H:%M} UTC" if when else ""
    facts = " · ".join(part for part in (date, length_text(duration)) if part)
    return PosterText(
        caller=_short(call.caller_name or settings.caller_label),
        callee=_short(call.callee_name or settings.callee_label),
        facts=facts,
    )


def _circle(stream, diameter: int):
    """``stream`` (``diameter`` square, rgba) with everything outside the inscribed circle transparent."""
    r = diameter / 2
    return stream.filter(
        "geq", r="r(X,Y)", g="g(X,Y)", b="b(X,Y)", a=f"if(lte(hypot(X-{r - 0.5},Y-{r - 0.5}),{r}),255,0)"
    )


def _avatar(image: Path | None, side: str):
    """The side's avatar cropped to a square around its top (where faces are) and cut round; without one, its card colour."""
    if image is None:
        face = ffmpeg.input(f"color=c={CARD_COLOURS[side]}:s={AVATAR}x{AVATAR}:d=1", f="lavfi").video
    else:
        face = ffmpeg.input(str(image)).video.filter("trim", end_frame=1)
        face = face.filter("scale", AVATAR, AVATAR, force_original_aspect_ratio="increase", flags="bicubic")
        face = face.filter("crop", AVATAR, AVATAR, "(iw-ow)/2", "(ih-oh)/4")
    return _circle(face.filter("format", "rgba").filter("setsar", 1), AVATAR)


def _ring(side: str):
    outer = AVATAR + 2 * RING
    disc = ffmpeg.input(f"color=c={WAVE_COLOUR[side]}:s={outer}x{outer}:d=1", f="lavfi").video.filter("format", "rgba")
    return _circle(disc, outer)


def name_size(name: str) -> int:
    """The font size that fits ``name`` in its box (most names get NAME_SIZE)."""
    return max(24, min(NAME_SIZE, int(NAME_BOX[0] / (LETTER_EMS * max(1, len(name))))))


def _text(stream, font: Path, text_file: Path, size: int, centre_x: int | str, y: int | str, colour: str):
    return stream.filter(
        "drawtext",
        fontfile=str(font),
        textfile=str(text_file),
        expansion="none",
        fontsize=size,
        fontcolor=colour,
        x=f"{centre_x}-tw/2",
        y=y,
    )


def _name_boxes():
    """Two name plates (one source split: ffmpeg-python would merge two identical inputs into one)."""
    width, height = NAME_BOX
    return ffmpeg.input(f"color=c={PLATE}:s={width}x{height}:d=1", f="lavfi").video.filter("format", "rgba").split()


def _name(box, font: Path, text_file: Path, size: int):
    """A name centred on its plate: whatever its letters, it is cut at the plate's edge, never into the other half."""
    return _text(box, font, text_file, size, NAME_BOX[0] // 2, "(h-th)/2", "white")


def build_poster_command(
    text: PosterText, avatars: dict[str, Path | None], font: Path | None, output: Path, workdir: Path, *, binary: str = "ffmpeg"
) -> list[str]:
    """The FFmpeg command (binary first) that draws the poster into ``output`` (a JPEG)."""
    canvas = ffmpeg.input(f"color=c={BACKGROUND}:s={WIDTH}x{HEIGHT}:d=1", f="lavfi").video.filter("format", "rgba")
    top = AVATAR_TOP
    for index, side in enumerate(("caller", "callee")):
        centre = WIDTH // 4 + index * WIDTH // 2
        canvas = canvas.overlay(_ring(side), x=centre - AVATAR // 2 - RING, y=top - RING)
        canvas = canvas.overlay(_avatar(avatars.get(side), side), x=centre - AVATAR // 2, y=top)
    if font is not None:
        boxes = _name_boxes()
        for index, (side, name) in enumerate((("caller", text.caller), ("callee", text.callee))):
            if not name:
                continue
            text_file = workdir / f"poster-{side}.txt"
            text_file.write_text(name, encoding="utf-8")
            centre = WIDTH // 4 + index * WIDTH // 2
            canvas = canvas.overlay(_name(boxes[index], font, text_file, name_size(name)), x=centre - NAME_BOX[0] // 2, y=NAME_TOP)
        if text.facts:
            text_file = workdir / "poster-facts.txt"
            text_file.write_text(text.facts, encoding="utf-8")
            canvas = _text(canvas, font, text_file, FACTS_SIZE, WIDTH // 2, FACTS_TOP, "0xcbd5e1")
    picture = canvas.filter("format", "yuvj420p")
    return (
        ffmpeg.output(picture, str(output), vframes=1, **{"q:v": JPEG_QUALITY, "f": "image2", "update": 1})
        .overwrite_output()
        .compile(cmd=binary)
    )


def attach_command(video: Path, poster: Path, output: Path, *, binary: str = "ffmpeg") -> list[str]:
    """Copy ``video``'s streams and add ``poster`` as its cover art; the moov atom stays in front (+faststart)."""
    return [
        binary, "-i", str(video), "-i", str(poster),
        "-map", "0", "-map", "1", "-c", "copy",
        "-disposition:v:1", "attached_pic",
        "-movflags", "+faststart",
        "-y", str(output),
    ]  # fmt: skip


def add_poster(
    call: Call,
    settings: Settings,
    storage: Storage,
    workdir: Path,
    video: Path,
    avatars: dict[str, Path | None],
    font: Path | None,
    duration: float | None,
) -> str | None:
    """Draw the poster, attach it to ``video`` (in place) and store it; its URL, or None on any failure.

    The video is replaced only by a complete remux: a failed attach leaves the
    rendered file as it was.
    """
    extra = {"call_id": call.id, "stage": "compositor"}
    poster = workdir / "poster.jpg"
    covered = workdir / "final-covered.mp4"
    try:
        text = poster_text(call, settings, duration)
        run_ffmpeg(
            build_poster_command(text, avatars, font, poster, workdir, binary=settings.ffmpeg_binary),
            timeout=TIMEOUT, what="poster", log_extra=extra,
        )  # fmt: skip
        if not poster.is_file() or poster.stat().st_size == 0:
            raise FFmpegError("the poster is empty")
        run_ffmpeg(
            attach_command(video, poster, covered, binary=settings.ffmpeg_binary),
            timeout=max(TIMEOUT, settings.compose_timeout / 10), what="attach poster", log_extra=extra,
        )  # fmt: skip
        os.replace(covered, video)
        key = keys.poster_key(call.id)
        storage.upload_file(poster, key, content_type="image/jpeg")
        return storage.object_url(key)
    except Exception as exc:  # a poster never fails the video, whatever went wrong (the store's client errors included)
        log.warning("no poster: %s: %s", exc.__class__.__name__, exc, extra=extra)
        return None
