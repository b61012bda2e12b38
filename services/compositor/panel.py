"""Panels as ffmpeg-python streams: a side's clips fitted to the panel, stills, and the local panel.

The local panel stands in for a side with no generated video (no fal key, a
silent side, a failed or corrupt generation): the side's avatar still (or a
coloured card) with a waveform of that side's audio along the bottom, so the
panel visibly moves when that person speaks.

Speed matters more than anything else here, because every pixel that goes
through the graph is paid for on every frame:

- a still is decoded, scaled and converted to yuv420p **once**, then repeated
  with ``loop`` (which hands on references to the same frame, no copies);
- a clip is scaled once, straight to its fitted size (never to the panel and
  back), in the encoder's pixel format, so no other conversion happens; it is
  padded only when its shape is not the panel's;
- frame-rate conversion runs before scaling when it drops frames and after when
  it repeats them, so no frame is scaled that is not kept or only copied;
- a clip reduced to half its size or less is decoded without the deblocking
  of its B-frames (``decode_options``), which the reduction averages away;
- the waveform is drawn at the size of its band, not of the panel.
"""

from __future__ import annotations

import ffmpeg

from shared.ffmpeg import IMAGE, RECORDING, VIDEO, file_url, input_options

from .layout import Clip, SideSpec, fit
from .layouts import TOP_SHARE, cover, crop_origin

__all__ = ["CARD_COLOURS", "scale_flags", "decode_options", "still", "hold", "clip_source", "fitted_clip", "local_panel"]

CARD_COLOURS = {"caller": "0x1e3a5f", "callee": "0x3b2f4a"}
WAVE_COLOUR = {"caller": "0x9ad0ff", "callee": "0xf3c4ff"}


def scale_flags(source_height: int, target_height: int) -> str:
    """The cheapest scaler that keeps the panel as sharp as the plan's.

    For a mild resize (512→480) bicubic is sharper than bilinear at the same
    cost (both read 4 taps); fast_bilinear aliases on big reductions. Big
    reductions are judged after encoding, which is what a viewer sees:
    bilinear's softer picture loses as much as two CRF steps, bicubic costs
    more CPU, and area (averaging each source block, exact for 720p→360) gets
    nearly bicubic's sharpness at bilinear's cost. So: bicubic for mild
    resizes, area beyond 1.5×. Measured: docs/benchmarks.md, section
    "Panel scaling".
    """
    return "area" if source_height > 1.5 * target_height else "bicubic"


def decode_options(source_width: int, source_height: int, fit_width: int, fit_height: int, *, one_thread: bool = False) -> dict[str, str]:
    """Decoder options for a clip shown at ``fit_width``×``fit_height``: none unless it is halved or more.

    Decoding is most of a 720p render's CPU, and deblocking is a large share
    of an H.264 decode. A reduction to half size or less averages every 2×2
    block of the source, block edges included, so deblocking B-frames buys
    nothing a viewer can see, and skipping it saves CPU and wall time. Only
    B-frames: skipping it on every frame shows. Not below a 2× reduction:
    there the picture loses a little and there is no time to win. Measured:
    docs/benchmarks.md, section "Decoding reduced sides".

    ``one_thread``: decode on one thread (see ``shared.ffmpeg.threaded_cli``).
    """
    options = {"threads": "1"} if one_thread else {}
    if source_width >= 2 * fit_width and source_height >= 2 * fit_height:
        options["skip_loop_filter"] = "bidir"
    return options


def _pad(stream, width: int, height: int, panel_w: int, panel_h: int):
    if (width, height) == (panel_w, panel_h):
        return stream
    x, y = (panel_w - width) // 2 // 2 * 2, (panel_h - height) // 2 // 2 * 2
    return stream.filter("pad", panel_w, panel_h, x, y, color="black")


def still(side: SideSpec, width: int, height: int, fps: int, *, crop: bool = False):
    """One panel-sized yuv420p frame: the side's avatar fitted and padded (or cropped to fill), or a coloured card."""
    if side.avatar is None:
        return ffmpeg.input(f"color=c={CARD_COLOURS[side.side]}:s={width}x{height}:r={fps}:d={1 / fps}", f="lavfi").video.filter(
            "format", "yuv420p"
        )
    frame = ffmpeg.input(file_url(side.avatar), **input_options(side.avatar, IMAGE)).video.filter("trim", end_frame=1)
    if crop:
        # The image's size is not probed here: FFmpeg places the crop, by the rule of layouts.crop_origin.
        frame = frame.filter("scale", width, height, force_original_aspect_ratio="increase", flags="bicubic")
        frame = frame.filter("crop", width, height, "(iw-ow)/2", f"(ih-oh)*{TOP_SHARE}")
    else:
        frame = frame.filter("scale", width, height, force_original_aspect_ratio="decrease", flags="bicubic")
        frame = frame.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
    return frame.filter("setsar", 1).filter("format", "yuv420p")


def hold(frame, frames: int, fps: int):
    """A single frame repeated ``frames`` times at ``fps``, timestamps from zero."""
    return frame.filter("loop", loop=frames - 1, size=1, start=0).filter("setpts", f"N/({fps}*TB)")


def clip_source(clip: Clip, width: int, height: int, *, one_thread: bool = False, crop: bool = False, seek: float = 0.0):
    """``clip``'s file opened as one input, read from ``seek`` seconds (exact to the frame), timestamps from zero."""
    fit_w, fit_h = (cover if crop else fit)(clip.info.width, clip.info.height, width, height)
    decoding = decode_options(clip.info.width, clip.info.height, fit_w, fit_h, one_thread=one_thread)
    options = {"ss": f"{seek:.3f}"} if seek > 0 else {}
    stream = ffmpeg.input(file_url(clip.path), **options, **decoding, **input_options(clip.path, VIDEO)).video
    return stream.filter("setpts", "PTS-STARTPTS")


def fitted_clip(
    clip: Clip,
    frames: int,
    width: int,
    height: int,
    fps: int,
    *,
    one_thread: bool = False,
    crop: bool = False,
    skip: int = 0,
    source=None,
    source_start: float = 0.0,
):
    """``frames`` frames of ``clip`` fitted to the panel: trimmed when long, last frame held when short.

    ``crop``: the clip covers the panel and is cut to it around its face
    (``clip.focus``), instead of fitting inside it with bars. ``skip``: the
    first frames of those are left out (a chunk that starts inside the clip).
    A clip with an ``offset`` (a piece of a packed video) is read from there:
    an input seek, exact to the frame (FFmpeg decodes from the keyframe before
    and drops what precedes).

    ``source``: one output of a ``split`` of the clip's file opened by
    :func:`clip_source` at ``source_start`` seconds, shared with the file's other
    pieces (one decoder a file, not one a piece; docs/compositor.md, "Speed").
    The piece is cut from it with ``trim``, ending a few frames past what it
    shows, so the file's next piece, later in the call, is never held back
    and no piece buffers another's frames.
    """
    sizing = cover if crop else fit
    fit_w, fit_h = sizing(clip.info.width, clip.info.height, width, height)
    if source is None:
        stream = clip_source(clip, width, height, one_thread=one_thread, crop=crop, seek=clip.offset)
    else:
        start = max(0.0, clip.offset - source_start)
        # A few frames of margin so `fps` sees the frame after the last it keeps.
        end = start + (frames + 3) / min(fps, clip.info.fps or fps)
        stream = source.filter("trim", start=f"{start:.3f}", end=f"{end:.3f}").filter("setpts", "PTS-STARTPTS")
    drops = clip.info.fps == 0 or clip.info.fps >= fps
    if drops:
        stream = stream.filter("fps", fps)
    stream = stream.filter("scale", fit_w, fit_h, flags=scale_flags(clip.info.height, fit_h))
    stream = stream.filter("format", "yuv420p").filter("setsar", 1)
    if not drops:
        stream = stream.filter("fps", fps)
    if crop and (fit_w, fit_h) != (width, height):
        x, y = crop_origin((fit_w, fit_h), (width, height), clip.focus)
        stream = stream.filter("crop", width, height, x, y)
    elif not crop:
        stream = _pad(stream, fit_w, fit_h, width, height)
    stream = stream.filter("tpad", stop_mode="clone", stop_duration=round(frames / fps + 1, 3))
    if skip:
        return stream.filter("trim", start_frame=skip, end_frame=frames).filter("setpts", "PTS-STARTPTS")
    return stream.filter("trim", end_frame=frames)


def local_panel(
    side: SideSpec, frames: int, width: int, height: int, fps: int, *, crop: bool = False, skip: int | None = None
):
    """The side's still with a live waveform of its audio, ``frames`` frames long (from frame ``skip`` of the call's: a chunk)."""
    background = hold(still(side, width, height, fps, crop=crop), frames, fps)
    if side.audio is None:
        return background
    audio = ffmpeg.input(file_url(side.audio), **input_options(side.audio, RECORDING)).audio
    if side.audio_channel is not None:
        # "<" rather than "=": the same mapping (one source, gain 1), and no "="
        # for ffmpeg-python to escape twice.
        audio = audio.filter("pan", f"mono|c0<c{side.audio_channel}")
    else:
        audio = audio.filter("aformat", channel_layouts="mono")
    if skip is not None:
        # A chunk's waveform is the call's over the chunk's frames: whole frames of audio, so chunks join seamlessly.
        audio = audio.filter("atrim", start=f"{skip / fps:.6f}", end=f"{(skip + frames) / fps:.6f}").filter("asetpts", "PTS-STARTPTS")
    band_h = max(16, height // 5 // 2 * 2)
    # showwaves makes exactly `fps` frames a second only when the sample rate is
    # a multiple of width × fps; phone audio (8 kHz) is not, so resample first.
    audio = audio.filter("aresample", width * fps)
    wave = audio.filter(
        "showwaves", s=f"{width}x{band_h}", mode="cline", rate=fps, scale="sqrt", draw="full", colors=WAVE_COLOUR[side.side]
    )
    y = height - band_h - max(8, height // 30)
    return ffmpeg.overlay(background, wave, x=0, y=y, eof_action="pass", format="yuv420")
