"""Our FFmpeg commands against the original plan's, on the same inputs, in the same run.

Split: ``services.audio.split_command`` (one pass, both sides, speech
measured on the way) against the plan's two ``pan=mono|c0=FL`` / ``FR`` passes.

Compose: the compositor's command, from ``services.compositor.render_command``
for the two side videos as one segment each plus the call's audio, against the
plan's exact command::

    ffmpeg -i caller.mp4 -i callee.mp4 -filter_complex
      "[0:v]scale=640:480[left];[1:v]scale=640:480[right];[left][right]hstack=inputs=2[v]"
      -map [v] -c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p out.mp4

Ours does more: it muxes the call's audio (AAC) and draws the labels and the
speaker highlight. It also renders each other ``VIDEO_LAYOUT`` (``LAYOUTS``):
the same command with the frame of that layout, and with captions burned in
(``CAPTIONS=burn``, from a transcript of the conversation) in the default
layout, alternating with the same render without, so their CPU compares. Its speed is measured as shipped (all of that); its picture
quality on the same render without labels and highlight, since those are not
in the source the quality is measured against.

Quality: SSIM and PSNR (FFmpeg's own ``ssim``/``psnr`` filters, on yuv420p)
of each output against the source panels scaled with lanczos to that output's
own geometry: the plan stretches each source to 640×480; ours fits it inside
640×480 keeping its shape (512×512 → 480×480, 1280×720 → 640×360) and, the two
sources sharing that shape, makes the panels that size (no bars to pad). Only
the picture area is compared. Sizes are the video streams' bytes (ours also carries ~96 kb/s of audio).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from bench import media
from bench.measure import Usage, loadavg, median_of, run_command

__all__ = [
    "PLAN_GRAPH",
    "LAYOUTS",
    "Encoder",
    "Render",
    "Quality",
    "ComposeInputs",
    "SplitComparison",
    "split_comparison",
    "plan_split_commands",
    "compose_inputs",
    "plan_command",
    "our_command",
    "caption_turns",
    "default_encoder",
    "render_plan",
    "render_ours",
    "interleaved",
    "quality",
    "video_bytes",
    "choose",
    "segment_memory",
]

PLAN_GRAPH = "[0:v]scale=640:480[left];[1:v]scale=640:480[right];[left][right]hstack=inputs=2[v]"
PLAN_PANEL = (640, 480)  # the plan stretches each side to this
PLAN_OUTPUT = ["-map", "[v]", "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p"]
QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
DEFAULT_LAYOUT = "side-by-side"
# The layouts besides the default that the compose comparison renders (a row each).
LAYOUTS = ("landscape", "square", "vertical")


# -- split ----------------------------------------------------------------------


def plan_split_commands(source: Path, workdir: Path, ffmpeg: str = "ffmpeg") -> list[list[str]]:
    """The plan's two passes (fluent-ffmpeg's ``audioFilters('pan=mono|c0=FL')``, then FR)."""
    return [
        [ffmpeg, *QUIET, "-i", str(source), "-af", f"pan=mono|c0={channel}", str(workdir / f"plan-{side}.mp3")]
        for side, channel in (("caller", "FL"), ("callee", "FR"))
    ]


def _our_split_command(source: Path, workdir: Path) -> list[str]:
    from services.audio import split_command
    from shared.settings import load_settings

    outputs = {side: workdir / f"ours-{side}.mp3" for side in ("caller", "callee")}
    return split_command(source, outputs, load_settings({}), workdir=workdir)


@dataclass
class SplitComparison:
    ours: Usage
    plan: Usage
    ours_bytes: int
    plan_bytes: int
    load: float

    @property
    def ratio(self) -> float:
        return self.plan.wall / self.ours.wall if self.ours.wall else float("nan")


def _sum(usages: Sequence[Usage]) -> Usage:
    return Usage(wall=sum(u.wall for u in usages), cpu=sum(u.cpu for u in usages), rss=max(u.rss for u in usages))


def _median(usages: Sequence[Usage]) -> Usage:
    return Usage(wall=median_of(u.wall for u in usages), cpu=median_of(u.cpu for u in usages), rss=median_of(u.rss for u in usages))


def split_comparison(source: Path, workdir: Path, repeat: int) -> SplitComparison:
    """Ours and the plan's, alternating, ``repeat`` times each; medians."""
    workdir.mkdir(parents=True, exist_ok=True)
    ours_cmd = _our_split_command(source, workdir)
    ours, plan, loads = [], [], []
    for _ in range(repeat):
        loads.append(loadavg())
        ours.append(run_command(ours_cmd, log=workdir / "ours-split.log"))
        plan.append(_sum([run_command(cmd, log=workdir / "plan-split.log") for cmd in plan_split_commands(source, workdir)]))
    size = lambda prefix: sum((workdir / f"{prefix}-{side}.mp3").stat().st_size for side in ("caller", "callee"))  # noqa: E731
    return SplitComparison(_median(ours), _median(plan), size("ours"), size("plan"), median_of(loads))


# -- compose --------------------------------------------------------------------


@dataclass(frozen=True)
class Encoder:
    """An x264 setting of the compositor: preset, CRF and extra parameters."""

    preset: str
    crf: int
    params: str = ""

    @property
    def label(self) -> str:
        return f"{self.preset} crf {self.crf}" + (f" {self.params}" if self.params else " (preset alone)")


@dataclass(frozen=True)
class Quality:
    ssim: float
    psnr: float


@dataclass
class Render:
    name: str
    usage: Usage  # medians over the repetitions
    video_bytes: int
    quality: Quality | None = None
    encoder: Encoder | None = None
    runs: list[Usage] = field(default_factory=list)


@dataclass(frozen=True)
class ComposeInputs:
    caller: Path
    callee: Path
    call: media.Conversation
    seconds: float
    size: str


def compose_inputs(size: str, seconds: float, cache: Path) -> ComposeInputs:
    call = media.conversation(seconds, cache)
    videos = {side: media.side_video(side, size, seconds, cache) for side in ("caller", "callee")}
    return ComposeInputs(videos["caller"], videos["callee"], call, seconds, size)


def plan_command(inputs: ComposeInputs, output: Path) -> list[str]:
    return ["ffmpeg", *QUIET, "-i", str(inputs.caller), "-i", str(inputs.callee), "-filter_complex", PLAN_GRAPH, *PLAN_OUTPUT, str(output)]


def _our_sides(inputs: ComposeInputs, *, overlays: bool):
    from services.compositor import Clip, SideSpec
    from shared.assets import avatar_path
    from shared.ffmpeg import probe_video
    from shared.settings import load_settings

    settings = load_settings({})
    speech = {"caller": inputs.call.caller_speech, "callee": inputs.call.callee_speech}
    sides = {}
    for side, path in (("caller", inputs.caller), ("callee", inputs.callee)):
        clip = Clip(path=path, start=0.0, end=inputs.seconds, info=probe_video(path, settings))
        label = settings.caller_label if side == "caller" else settings.callee_label
        sides[side] = SideSpec(side, label, avatar_path(side), clips=(clip,), speech=speech[side] if overlays else ())
    return sides["caller"], sides["callee"]


def _settings(encoder: Encoder | None = None, layout: str = DEFAULT_LAYOUT):
    from shared.settings import load_settings

    settings = replace(load_settings({}), video_layout=layout)
    if encoder is None:
        return settings
    return replace(settings, video_preset=encoder.preset, video_crf=encoder.crf, video_x264_params=encoder.params)


# Words a second of speech carries in a transcript (about 150 words a minute): the captions' text.
CAPTION_SCRIPT = (
    "Hello, this is the scheduling assistant calling about your appointment on Thursday. "
    "I can move it to Friday morning at nine, or keep the original time. Which would you prefer? "
)


def caption_turns(call: media.Conversation):
    """A transcript of the conversation: each stretch of speech a turn, its words as long as its time allows."""
    from services.compositor import Turn

    turns = []
    for side, spans in (("caller", call.caller_speech), ("callee", call.callee_speech)):
        for start, end in spans:
            chars = max(8, int((end - start) * 15))
            turns.append(Turn(side, start, end, (CAPTION_SCRIPT * (1 + chars // len(CAPTION_SCRIPT)))[:chars].strip()))
    return tuple(sorted(turns, key=lambda t: t.start))


def our_command(
    inputs: ComposeInputs,
    output: Path,
    workdir: Path,
    encoder: Encoder,
    *,
    overlays: bool,
    layout: str = DEFAULT_LAYOUT,
    captions: str = "off",
) -> list[str]:
    """Our graph for the two side videos (one segment each) and the call's audio, via the compositor's own code.

    ``captions`` (``burn``/``track``): with the conversation's transcript (:func:`caption_turns`), shown that way.
    """
    from services.compositor import render_command, resolve_font

    settings = _settings(encoder, layout)
    caller, callee = _our_sides(inputs, overlays=overlays)
    workdir.mkdir(parents=True, exist_ok=True)
    font = resolve_font(settings) if overlays else None
    turns = caption_turns(inputs.call) if captions != "off" else ()
    args = render_command(settings, inputs.call.path, inputs.seconds, caller, callee, output, workdir, font=font, turns=turns, captions=captions)
    return [args[0], *QUIET, *args[1:]]


def our_layout(inputs: ComposeInputs, layout: str = DEFAULT_LAYOUT):
    """The frame the compositor renders these side videos in (``services.compositor.Layout``)."""
    from services.compositor import render_layout

    return render_layout(_settings(layout=layout), *_our_sides(inputs, overlays=False))


def default_encoder() -> Encoder:
    from shared.settings import load_settings

    settings = load_settings({})
    return Encoder(settings.video_preset, settings.video_crf, settings.video_x264_params)


def video_bytes(path: Path) -> int:
    """Bytes of the video stream alone (the audio a file may carry left out)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=size", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return sum(int(line) for line in out.split() if line.strip().isdigit())


@dataclass(frozen=True)
class _Geometry:
    """One side's picture in an output: the reference (the source scaled, maybe cropped) and where it is in the frame."""

    reference: str  # filters from the source to the reference picture
    x: int
    y: int
    w: int
    h: int


def _geometry(source: Path, side: str, *, panel: tuple[int, int] | None = None, layout=None) -> _Geometry:
    """The plan's stretched ``panel`` (side by side), or the side's place in our ``layout``."""
    from services.compositor import CROP, cover, crop_origin, fit
    from shared.ffmpeg import probe_video
    from shared.settings import load_settings

    if layout is None:
        pw, ph = panel
        return _Geometry(f"scale={pw}:{ph}:flags=lanczos", 0 if side == "caller" else pw, 0, pw, ph)
    rect = layout.panel(side)
    info = probe_video(source, load_settings({}))
    if layout.fit == CROP:
        cw, ch = cover(info.width, info.height, rect.w, rect.h)
        x, y = crop_origin((cw, ch), (rect.w, rect.h))
        return _Geometry(f"scale={cw}:{ch}:flags=lanczos,crop={rect.w}:{rect.h}:{x}:{y}", rect.x, rect.y, rect.w, rect.h)
    w, h = fit(info.width, info.height, rect.w, rect.h)
    return _Geometry(f"scale={w}:{h}:flags=lanczos", rect.x + (rect.w - w) // 2 // 2 * 2, rect.y + (rect.h - h) // 2 // 2 * 2, w, h)


_SSIM = re.compile(r"SSIM .*All:([0-9.]+)")
_PSNR = re.compile(r"PSNR .*average:([0-9.]+|inf)")


def quality(output: Path, inputs: ComposeInputs, *, panel: tuple[int, int] | None = None, layout=None) -> Quality:
    """SSIM and PSNR of ``output``'s picture areas against the lanczos-scaled sources.

    ``panel``: the plan's geometry, each source stretched to it side by side;
    ``layout``: ours (``services.compositor.Layout``), each source fitted or
    cropped into its panel as the compositor does.
    """
    left = _geometry(inputs.caller, "caller", panel=panel, layout=layout)
    right = _geometry(inputs.callee, "callee", panel=panel, layout=layout)
    graph = ";".join(
        [
            f"[1:v]{left.reference},setsar=1,format=yuv420p[rl]",
            f"[2:v]{right.reference},setsar=1,format=yuv420p[rr]",
            "[rl][rr]hstack=inputs=2,split[ref1][ref2]",
            "[0:v]setsar=1,format=yuv420p,split[dl][dr]",
            f"[dl]crop={left.w}:{left.h}:{left.x}:{left.y}[cl]",
            f"[dr]crop={right.w}:{right.h}:{right.x}:{right.y}[cr]",
            "[cl][cr]hstack=inputs=2,split[d1][d2]",
            "[d1][ref1]ssim[s]",
            "[d2][ref2]psnr[p]",
        ]
    )
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(output), "-i", str(inputs.caller), "-i", str(inputs.callee),
         "-filter_complex", graph, "-map", "[s]", "-f", "null", "-", "-map", "[p]", "-f", "null", "-"],
        capture_output=True, text=True,
    )
    ssim, psnr = _SSIM.search(done.stderr), _PSNR.search(done.stderr)
    if done.returncode != 0 or not ssim or not psnr:
        raise RuntimeError(f"quality measurement failed: {done.stderr[-1500:]}")
    return Quality(ssim=float(ssim[1]), psnr=float(psnr[1]))


def _render(name: str, command: Callable[[Path], list[str]], output: Path, repeat: int, log: Path) -> Render:
    runs = [run_command(command(output), log=log) for _ in range(repeat)]
    return Render(name=name, usage=_median(runs), video_bytes=video_bytes(output), runs=runs)


def render_plan(inputs: ComposeInputs, workdir: Path, repeat: int) -> Render:
    output = workdir / f"plan-{inputs.size}.mp4"
    render = _render("plan (medium, crf 23)", lambda out: plan_command(inputs, out), output, repeat, workdir / "plan.log")
    render.quality = quality(output, inputs, panel=PLAN_PANEL)
    return render


def render_ours(
    inputs: ComposeInputs,
    workdir: Path,
    encoder: Encoder,
    repeat: int,
    *,
    overlays: bool,
    measure_quality: bool,
    layout: str = DEFAULT_LAYOUT,
    captions: str = "off",
) -> Render:
    tag = f"{encoder.preset}-{encoder.crf}-{abs(hash(encoder.params)) % 10**6}-{'full' if overlays else 'bare'}-{inputs.size}-{layout}-{captions}"
    output = workdir / f"ours-{tag}.mp4"
    placed = our_layout(inputs, layout)
    name = f"ours ({encoder.label})" if layout == DEFAULT_LAYOUT else f"ours ({encoder.label}), {layout} {placed.width}×{placed.height}"
    render = _render(
        name,
        lambda out: our_command(inputs, out, workdir / f"work-{tag}", encoder, overlays=overlays, layout=layout, captions=captions),
        output, repeat, workdir / "ours.log",
    )
    render.encoder = encoder
    if measure_quality:
        render.quality = quality(output, inputs, layout=placed)
    return render


def interleaved(plan: Callable[[], Render], ours: Callable[[], Render], repeat: int) -> tuple[Render, Render]:
    """Run both ``repeat`` times, alternating, so a change of load hits both alike; medians."""
    plans, ourses = [], []
    for _ in range(repeat):
        plans.append(plan())
        ourses.append(ours())
    return merge(plans), merge(ourses)


def merge(renders: list[Render]) -> Render:
    """Renders of one command made at different times as one: medians of all their runs, the quality measured."""
    runs = [run for render in renders for run in render.runs]
    measured = next((r.quality for r in renders if r.quality is not None), None)
    return replace(renders[-1], usage=_median(runs), runs=runs, quality=measured)


def choose(
    plan: Render,
    candidates: Sequence[Render],
    *,
    default: Encoder | None = None,
    ssim_margin: float = 0.005,
    size_factor: float = 1.5,
    tie: float = 0.10,
) -> Render | None:
    """The fastest encoder family that reaches the plan's quality, at its highest CRF that does.

    Eligible: SSIM within ``ssim_margin`` of the plan's and a video at most
    ``size_factor``× as large. CPU time hardly depends on the CRF (x264 does
    the same analysis at every rate), so ranking single renders by CPU would
    let a shared machine's noise pick between CRFs of one preset. Families
    (preset and x264 parameters) are ranked by the median CPU of all their
    renders instead; those within ``tie`` of the fastest eligible one are
    equally fast (this machine drifts by more than the gap between families
    from one run to the next: docs/benchmarks.md, section "Compositor defaults"),
    and among them the ``default``'s family stays, so the default does not change on noise. The
    family gives its highest eligible CRF: the smallest file at the plan's quality.
    """
    assert plan.quality is not None

    def passes(c: Render) -> bool:
        return c.quality is not None and c.quality.ssim >= plan.quality.ssim - ssim_margin and c.video_bytes <= size_factor * plan.video_bytes

    families: dict[tuple[str, str], list[Render]] = {}
    for c in candidates:
        if c.encoder is not None:
            families.setdefault((c.encoder.preset, c.encoder.params), []).append(c)
    speed = {key: median_of(r.usage.cpu for r in renders) for key, renders in families.items()}
    usable = sorted((key for key, renders in families.items() if any(passes(c) for c in renders)), key=speed.__getitem__)
    if not usable:
        return None
    picked = usable[0]
    if default is not None:
        kept = (default.preset, default.params)
        if kept in usable and speed[kept] <= speed[picked] * (1 + tie):
            picked = kept
    return max((c for c in families[picked] if passes(c)), key=lambda c: c.encoder.crf)


def segment_memory(workdir: Path, cache: Path, counts: Sequence[int], *, seconds: float = 10.0) -> list[tuple[int, Usage]]:
    """Our render of a call whose sides are ``k`` generated segments each, for each ``k``: FFmpeg's cost.

    Every segment is an input of the one FFmpeg command, and FFmpeg opens and
    starts decoding every input before the first frame is encoded, so its
    memory grows with the number of segments, not with the call's length.
    """
    from services.compositor import Clip, SideSpec, render_command
    from shared.assets import avatar_path
    from shared.ffmpeg import probe_video
    from shared.settings import load_settings

    settings = load_settings({})
    workdir.mkdir(parents=True, exist_ok=True)
    clips = {side: media.side_video(side, "512x512", seconds, cache) for side in ("caller", "callee")}
    info = {side: probe_video(path, settings) for side, path in clips.items()}
    found = []
    for count in counts:
        call = media.conversation(seconds * count, cache)
        sides = {}
        for side, path in clips.items():
            pieces = []
            for index in range(count):
                link = workdir / f"{side}-{index:03d}.mp4"  # one file per segment, as the compositor has
                if not link.exists():
                    link.symlink_to(path)
                pieces.append(Clip(link, seconds * index, seconds * (index + 1), info[side]))
            speech = call.caller_speech if side == "caller" else call.callee_speech
            sides[side] = SideSpec(side, side, avatar_path(side), clips=tuple(pieces), speech=speech)
        args = render_command(settings, call.path, seconds * count, sides["caller"], sides["callee"], workdir / "segments.mp4", workdir)
        found.append((count, run_command([args[0], *QUIET, *args[1:]], log=workdir / "segments.log")))
    return found

