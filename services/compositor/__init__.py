"""The compositor service. Code outside it uses two entry points only:

- ``services.compositor.actors``: the worker (``dramatiq services.compositor.actors``).
  Importing it boots the process: settings, logging, database, broker.
- this package: the render itself, for code that must run exactly what the
  worker runs without being a worker (the benchmark). Importing it boots
  nothing: no broker, no database.

A render is two sides (a :class:`SideSpec` each: its :class:`Clip` videos, or
none for a local panel) over the call's stereo audio; :func:`render_command`
is the FFmpeg command the worker would run for it, with the encoder and the
panel box taken from ``settings``. :func:`render_layout` is the frame it
renders (``VIDEO_LAYOUT``: size, each side's panel, crop or fit), and
:func:`panel_size`, :func:`fit`, :func:`cover` and :func:`crop_origin` say
where each side's picture lands in its panel. Captions: ``render_command``
lays out a transcript's ``turns`` (:class:`Turn`) as cues for the frame and
burns them in and/or muxes them as a subtitle track (``captions``: one of
``CAPTION_MODES``), as the worker does for a call with a transcript.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shared.settings import Settings
from shared.transcript import Turn

from . import graph
from .captions import MODES as CAPTION_MODES
from .composer import render_layout, render_spec
from .graph import build_command
from .layout import Clip, SideSpec, fit, panel_size
from .layouts import CROP, LAYOUTS, Layout, Rect, cover, crop_origin
from .media import resolve_font

__all__ = [
    "Clip",
    "SideSpec",
    "render_command",
    "render_layout",
    "panel_size",
    "fit",
    "cover",
    "crop_origin",
    "resolve_font",
    "Layout",
    "Rect",
    "LAYOUTS",
    "CROP",
    "Turn",
    "CAPTION_MODES",
]


def render_command(
    settings: Settings,
    recording: Path,
    duration: float,
    caller: SideSpec,
    callee: SideSpec,
    output: Path,
    workdir: Path,
    *,
    font: Path | None = None,
    turns: Sequence[Turn] = (),
    captions: str = "off",
    shared_inputs: bool = True,
) -> list[str]:
    """The FFmpeg argument list (binary first) that renders these two sides into ``output``.

    ``workdir`` receives what the command reads from files (label texts, a
    graph too long for one argument); ``font`` None renders no labels. With
    AUDIO_MIX=centered, building it runs FFmpeg once first: the recording's
    loudness measurement (:mod:`.mix`). A transcript's ``turns`` are shown
    as ``captions`` says (``burn``: on the picture and as a track; ``track``; ``off``).
    ``shared_inputs`` False gives a file showing several pieces an input a piece,
    as callreel did before (bench/many_clips.py compares the two).
    """
    spec = render_spec(settings, recording, duration, caller, callee, workdir, font=font, turns=turns, captions=captions)
    before = graph.SHARED_INPUTS
    graph.SHARED_INPUTS = shared_inputs
    try:
        return build_command(spec, output, binary=settings.ffmpeg_binary)
    finally:
        graph.SHARED_INPUTS = before
