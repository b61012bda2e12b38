"""The benchmark's figures as Markdown tables: printed, and written to docs/benchmarks.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from bench.compare import Render, SplitComparison
from bench.ingest_load import LoadResult, percentile
from bench.measure import MB, StageResult, Usage, median_of
from bench.pipeline import STAGE_ORDER, PipelineRun

__all__ = ["Report", "table", "stage_table", "write", "hand_written", "HAND_WRITTEN", "write_section", "PIPELINE_STAGES", "STAGE_COLUMNS"]

# The line that starts what people wrote into the document themselves (what
# the figures mean, one-off measurements the code points to): a run measures
# again everything above it and carries everything from it on over.
HAND_WRITTEN = "<!-- hand-written below: bench/run.py keeps this line and everything after it when it rewrites the file -->"

# What a call costs without the fal.ai wait: the three workers' own work (their
# S3 transfers included). The standalone upload row is already inside compose.
PIPELINE_STAGES = ("download", "split", "compose")
# "Within a few MB" (issue 12): the largest and smallest download peaks may differ by this much.
FLAT_DOWNLOAD_MB = 5
# The FFmpeg runner's own duration of the compose render (bench.stage collects what the services log).
RENDER_DURATION = "compose (ffmpeg)"
STAGE_COLUMNS = ("stage", "wall s", "CPU s", "worker RSS MB", "FFmpeg RSS MB", "peak total MB", "output", "load")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def size(value: float) -> str:
    if value >= MB:
        return f"{value / MB:.1f} MB"
    return f"{value / 1024:.0f} KB"


def mb(value: float) -> str:
    return f"{value / MB:.0f}" if value else "–"


def num(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def stage_table(run: PipelineRun) -> str:
    rows = []
    for name in STAGE_ORDER:
        result = run.stages.get(name)
        if result is None:
            continue
        rows.append(
            [name, num(result.wall), num(result.cpu), mb(result.worker.rss), mb(result.ffmpeg.rss), mb(result.peak_rss), size(result.output_bytes), num(result.load, 1)]
        )
    return table(STAGE_COLUMNS, rows)


def per_minute(run: PipelineRun) -> tuple[float, float]:
    wall = sum(run.stages[s].wall for s in PIPELINE_STAGES) / run.minutes
    cpu = sum(run.stages[s].cpu for s in PIPELINE_STAGES) / run.minutes
    return wall, cpu


def _render_row(render: Render, plan: Render, *, ratio: bool) -> list[str]:
    quality = render.quality
    return [
        render.name,
        num(render.usage.wall),
        num(render.usage.cpu),
        f"{plan.usage.wall / render.usage.wall:.2f}×" if ratio else "1×",
        f"{plan.usage.cpu / render.usage.cpu:.2f}×" if ratio else "1×",
        num(quality.ssim, 4) if quality else "–",
        num(quality.psnr, 2) if quality else "–",
        size(render.video_bytes),
        f"{render.video_bytes / plan.video_bytes:.2f}×",
        mb(render.usage.rss),
    ]


def _compose_target(size: str, plan: Render, shipped: Render, bare: Render, ffmpeg: str) -> tuple[str, str, bool]:
    wall = plan.usage.wall / shipped.usage.wall
    cpu = plan.usage.cpu / shipped.usage.cpu
    q = bare.quality
    equal = q is not None and q.ssim >= plan.quality.ssim - 0.005 and bare.video_bytes <= 1.5 * plan.video_bytes
    return (
        f"compose ≥ 2.5× faster than the plan at equal quality ({size}, FFmpeg {ffmpeg})",
        f"{wall:.2f}× wall, {cpu:.2f}× CPU; SSIM {q.ssim:.4f} vs {plan.quality.ssim:.4f}, size {bare.video_bytes / plan.video_bytes:.2f}×",
        wall >= 2.5 and equal,
    )


RENDER_COLUMNS = ("render", "wall s", "CPU s", "speed (wall)", "speed (CPU)", "SSIM", "PSNR dB", "video size", "size vs plan", "FFmpeg RSS MB")


@dataclass
class Elsewhere:
    """The plan against our default under another FFmpeg build."""

    version: str
    plan: Render
    shipped: Render
    bare: Render


@dataclass
class ComposeSection:
    size: str
    seconds: float
    plan: Render
    shipped: Render  # our default, with labels, highlight and audio (speed)
    bare: Render  # our default without labels and highlight (quality)
    sweep: list[Render] = field(default_factory=list)
    choice: Render | None = None
    elsewhere: list[Elsewhere] = field(default_factory=list)  # the same comparison under other FFmpeg builds
    layouts: list[tuple[Render, Render]] = field(default_factory=list)  # (shipped, bare) in each other VIDEO_LAYOUT
    captions: tuple[Render, Render] | None = None  # (without, with burned captions), alternating in the default layout


@dataclass
class Report:
    header: list[str] = field(default_factory=list)
    compose: list[ComposeSection] = field(default_factory=list)
    segments: list[tuple[int, Usage]] = field(default_factory=list)
    segment_seconds: float = 10.0
    split: dict[float, SplitComparison] = field(default_factory=dict)
    pipeline: list[PipelineRun] = field(default_factory=list)
    repeat: int = 1
    download: dict[int, StageResult] = field(default_factory=dict)
    webhook: list[LoadResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings_note: str = ""
    ffmpeg: str = "?"  # the version of the FFmpeg the run used

    # -- sections ------------------------------------------------------------
    def _pipeline(self) -> list[str]:
        if not self.pipeline:
            return []
        out = ["## Per stage", ""]
        out.append(
            f"Each stage runs in a fresh worker process (medians of {self.repeat} run(s)), which builds its object-store "
            "client before the clock starts, as a deployed worker has since its first message. Worker RSS is the Python "
            "process (imports included), FFmpeg RSS its largest FFmpeg/ffprobe child; peak total is their sum, an "
            "upper bound. CPU is user+system of the work, FFmpeg included. `load` is the 1-minute load average when the "
            "stage started (2 cores; other work was running)."
        )
        for run in self.pipeline:
            out += ["", f"### {run.minutes:g}-minute call", "", stage_table(run)]
        return out

    def _per_minute(self) -> list[str]:
        if not self.pipeline:
            return []
        rows = []
        for run in self.pipeline:
            wall, cpu = per_minute(run)
            render = run.stages["compose"].extra.get(RENDER_DURATION)
            rows.append([
                f"{run.minutes:g} min",
                num(sum(run.stages[s].wall for s in PIPELINE_STAGES), 1),
                num(wall, 2),
                num(cpu, 2),
                num(render / run.minutes if isinstance(render, (int, float)) else None, 2),
            ])
        return [
            "## Whole pipeline without the fal.ai wait",
            "",
            "download + split (segments cut too, as with FAL_KEY set; a segment that is the whole side is the side's "
            "file, not cut again) + compose (from fal-like segment videos), each "
            "with its own S3 transfers; target < 8 s per minute of call. The standalone upload row is already inside "
            "compose, and compose (local panels) is the deployment without fal.ai, so neither is added. *render* is "
            "the compositor's FFmpeg run alone (as its runner logs it), the rest of the compose stage being S3 "
            "transfers, probes and database writes. Until 2026-11-26 the compositor's FFmpeg runner returned up to a "
            "second after FFmpeg had exited (its wait woke only for progress lines, and FFmpeg writes its last one "
            "before it finishes the file): about a second of every render, 1.0 s of a 1-minute call's 7.4."
            + self._machine_speed(),
            "",
            table(("call", "wall s", "wall s per call minute", "CPU s per call minute", "of which render, wall s per call minute"), rows),
        ]

    def _machine_speed(self) -> str:
        """The plan's own render in this run, as a gauge of how fast the machine was (it drifts by up to 2×)."""
        section = next((c for c in self.compose if c.size == "512x512"), None)
        if section is None:
            return ""
        per_minute_cpu = section.plan.usage.cpu * 60 / section.seconds
        return (
            " The figures are seconds of this machine, whose speed drifts: the plan's own 512×512 render took "
            f"{per_minute_cpu:.0f} s of CPU per minute of video in this run, against 35 s on a fast afternoon and "
            "65 s in a slow phase of the same day (2026-11-26)."
        )

    def _split(self) -> list[str]:
        if not self.split:
            return []
        rows = [
            [f"{minutes:g} min", num(c.ours.wall, 3), num(c.plan.wall, 3), f"{c.ratio:.2f}×", num(c.ours.cpu, 3), num(c.plan.cpu, 3),
             size(c.ours_bytes), size(c.plan_bytes), num(c.load, 1)]
            for minutes, c in sorted(self.split.items())
        ]
        return [
            "## Split: ours against the plan's two passes",
            "",
            "Ours: one FFmpeg pass decoding the recording once, writing both sides (LAME VBR q5) and measuring each "
            "side's speech (silencedetect). The plan: `pan=mono|c0=FL` then `pan=mono|c0=FR`, two full decodes, "
            "FFmpeg's default MP3 settings (which at 8 kHz pick 8 kb/s). Same input, alternating, medians.",
            "",
            table(("call", "ours wall s", "plan wall s", "speed-up", "ours CPU s", "plan CPU s", "ours output", "plan output", "load"), rows),
        ]

    def _compose(self) -> list[str]:
        if not self.compose:
            return []
        out = [
            "## Compose: ours against the plan's command",
            "",
            "Same two fal-like side videos (talking heads made from the shipped avatars: texture, sway, drift, mouth, "
            "grain; H.264 CRF 18, 25 fps) and the same call audio. The plan's command is run exactly. Ours is the "
            "compositor's own command (`services.compositor.render_command`) with each video as a one-segment side; "
            "**ours also muxes the call's audio (AAC) and draws the labels and the speaker highlight** — its speed "
            "row includes all that. Quality is SSIM/PSNR of the picture areas against the sources scaled with lanczos "
            "to each output's geometry (the plan stretches to 640×480; ours keeps the shape), measured on our render "
            "without labels and highlight. Video sizes exclude audio.",
            "",
            "The two geometries are not the same picture: the plan stretches a 512×512 face to 640×480 (25 % wider, "
            "and 307 200 pixels a panel to encode), ours keeps its shape: 480×480 panels (640×360 for 720p), the "
            "panel taking the side videos' shape, so no bars are encoded. At the same CRF the plan's upscaled panels "
            "are easier to encode well, which is why ours needs a lower CRF for the same SSIM.",
            "",
            "The rows named after a layout (landscape, square, vertical: docs/layouts.md) are our shipped render in "
            "that `VIDEO_LAYOUT`'s frame; their SSIM compares each panel with its source cropped as the compositor "
            "crops it, on the same render without labels and highlight. The row *+ captions (burn)* is the shipped "
            "render with a transcript's captions burned in and muxed as a subtitle track, run alternately with the "
            "shipped render without them; its CPU is compared with that render's.",
            "",
            "Both commands run under the FFmpeg of the machine line above; a table under a size repeats the plan "
            "against our default under another build (`--also-ffmpeg`). The audio and compositor images "
            "(deploy/*.Dockerfile, Debian trixie) ship FFmpeg 7.1, whose command line gives every demuxer, decoder, "
            "filter graph and encoder a thread of its own (since 7.0); a Debian bookworm machine such as this one "
            "has 5.1. `make bench-image` runs the images' build (`scripts/image-ffmpeg.sh`) with this machine's "
            "as the other.",
        ]
        for section in self.compose:
            out += ["", f"### {section.size} sides, {section.seconds:g} s", ""]
            shipped = Render(f"{section.shipped.name}, shipped: audio, labels, highlight", section.shipped.usage, section.shipped.video_bytes, section.bare.quality)
            bare = Render(f"{section.bare.name}, no labels/highlight", section.bare.usage, section.bare.video_bytes, section.bare.quality)
            rows = [_render_row(section.plan, section.plan, ratio=False), _render_row(shipped, section.plan, ratio=True), _render_row(bare, section.plan, ratio=True)]
            for framed, framed_bare in section.layouts:
                shown = Render(f"{framed.name}: audio, labels, highlight", framed.usage, framed.video_bytes, framed_bare.quality)
                rows.append(_render_row(shown, section.plan, ratio=True))
            if section.captions is not None:
                without, captioned = section.captions
                extra = captioned.usage.cpu / without.usage.cpu - 1
                shown = Render(f"{captioned.name}, shipped + captions (burn): {extra:+.1%} CPU", captioned.usage, captioned.video_bytes, section.bare.quality)
                rows.append(_render_row(shown, section.plan, ratio=True))
            out.append(table(RENDER_COLUMNS, rows))
            for other in section.elsewhere:
                out += ["", f"The same two commands under FFmpeg {other.version} (alternating, {len(other.plan.runs)} run(s) each):", ""]
                shipped = Render(f"{other.shipped.name}, shipped", other.shipped.usage, other.bare.video_bytes, other.bare.quality)
                out.append(table(RENDER_COLUMNS, [_render_row(other.plan, other.plan, ratio=False), _render_row(shipped, other.plan, ratio=True)]))
            if section.sweep:
                out += [
                    "",
                    f"Encoder settings on our graph (no labels/highlight; eligible: SSIM ≥ plan − 0.005 = "
                    f"{section.plan.quality.ssim - 0.005:.4f} and video ≤ 1.5 × plan = {size(1.5 * section.plan.video_bytes)}; "
                    "fastest by CPU time):",
                    "",
                ]
                rows = []
                for render in sorted(section.sweep, key=lambda r: r.usage.cpu):
                    row = _render_row(render, section.plan, ratio=True)
                    ok = render.quality and render.quality.ssim >= section.plan.quality.ssim - 0.005 and render.video_bytes <= 1.5 * section.plan.video_bytes
                    mark = "**chosen**" if section.choice is render else ("eligible" if ok else "")
                    rows.append([*row, mark])
                out.append(table((*RENDER_COLUMNS, "rule"), rows))
        return out

    def _segments(self) -> list[str]:
        if not self.segments:
            return []
        rows = [[count, f"{count * self.segment_seconds:g} s", num(usage.cpu, 1), mb(usage.rss)] for count, usage in self.segments]
        first, last = self.segments[0], self.segments[-1]
        step = (last[1].rss - first[1].rss) / max(1, last[0] - first[0]) / MB
        return [
            "## Compose memory by segments",
            "",
            f"Our render of calls whose sides are *k* generated segments of {self.segment_seconds:g} s each (512×512): every segment is an "
            "input of the one FFmpeg command, and FFmpeg opens and starts decoding every input before it encodes the "
            f"first frame, so its memory grows by about **{step:.0f} MB per extra segment per side**, whatever the "
            "call's length. A 10-minute call is 3 segments a side with fal-ai/stable-avatar (up to 5 minutes a job), "
            "but 21 with fal-ai/infinitalk (28.8 s) or in GENERATION_MODE=speech (a segment per turn). On FFmpeg 7 "
            "and later, whose command line gives each decoder a thread, segmented sides are decoded on one thread a "
            "segment: the decoders' own frame threads only held buffers there (12 segments a side on 7.1: 474 MB with "
            "them, 362 MB without, 6 % faster; shared/ffmpeg/version.py, threaded_cli).",
            "",
            table(("segments per side", "call", "FFmpeg CPU s", "FFmpeg peak RSS MB"), rows),
        ]

    def _download(self) -> list[str]:
        if not self.download:
            return []
        rows = [[size(n), num(r.wall), f"{n / MB / r.wall:.0f} MB/s" if r.wall else "–", mb(r.worker.rss), num(r.load, 1)] for n, r in sorted(self.download.items())]
        out = [
            "## Download memory",
            "",
            "The ingest worker's real download (fake Twilio over TLS → temp file → moto S3), one fresh process per size.",
            "",
            table(("recording", "wall s", "throughput", "worker peak RSS MB", "load"), rows),
            "",
            "The body comes down 64 KiB at a time into a temp file and is uploaded from it once it is whole "
            "(services/ingest/download.py); boto3 reads a file part by part as it sends, so nothing in the worker "
            "grows with the recording. Until 2026-11-26 the body was streamed straight into a multipart upload, "
            "whose parts (the stream cannot be re-read) had to be held in memory: up to three 8 MiB parts, a step "
            "of 30 MB between a 2 MB recording (74 MB, one PUT) and a 200 MB one (104 MB).",
        ]
        return out

    def _webhook(self) -> list[str]:
        if not self.webhook:
            return []
        rows = []
        for r in self.webhook:
            rows.append(
                [r.name, r.requests, num(r.rate, 1), num(1000 * percentile(r.latency_from_due, 50), 1), num(1000 * percentile(r.latency_from_due, 99), 1),
                 num(1000 * percentile(r.latency_from_send, 50), 1), num(1000 * percentile(r.latency_from_send, 99), 1),
                 num(1000 * max(r.latency_from_send, default=float("nan")), 1), r.errors, num(r.load, 1)]
            )
        return [
            "## Ingest webhook",
            "",
            "gunicorn with deploy/gunicorn.conf.py (default workers and threads, INFO logs, metrics on), PostgreSQL and "
            "RabbitMQ (publisher confirms) on loopback; every request a distinct signed completed recording (202, one "
            "row, one message). Latency in ms; *due* counts from when the request was scheduled, *sent* from when it "
            "left the client. The client runs on the same two cores; when it is itself late to send (*due* ≫ *sent*), "
            "that is the machine's load, not the service.",
            "",
            table(("load", "requests", "req/s", "p50 due", "p99 due", "p50 sent", "p99 sent", "max sent", "non-202", "load avg"), rows),
        ]

    def targets(self) -> list[tuple[str, str, bool | None]]:
        found: list[tuple[str, str, bool | None]] = []
        for section in self.compose:
            found.append(_compose_target(section.size, section.plan, section.shipped, section.bare, self.ffmpeg))
            if section.captions is not None:
                without, captioned = section.captions
                extra = captioned.usage.cpu / without.usage.cpu - 1
                found.append(
                    (
                        f"burned captions ≤ 10 % more CPU ({section.size})",
                        f"{captioned.usage.cpu:.2f} s against {without.usage.cpu:.2f} s without: {extra:+.1%}",
                        extra <= 0.10,
                    )
                )
            found += [_compose_target(section.size, e.plan, e.shipped, e.bare, e.version) for e in section.elsewhere]
        for run in self.pipeline:
            wall, _ = per_minute(run)
            found.append((f"pipeline < 8 s per minute of call ({run.minutes:g} min)", f"{wall:.2f} s", wall < 8))
        peaks = [(f"{run.minutes:g} min {name}", r.peak_rss) for run in self.pipeline for name, r in run.stages.items()]
        peaks += [(f"download {size(n)}", r.peak_rss) for n, r in self.download.items()]
        if peaks:
            where, peak = max(peaks, key=lambda p: p[1])
            found.append(("every worker < 300 MB peak RSS incl. FFmpeg", f"max {peak / MB:.0f} MB ({where})", peak < 300 * MB))
        if self.download:
            sizes = sorted(self.download)
            rss = [self.download[n].worker.rss for n in sizes]
            spread = max(rss) - min(rss)
            found.append(
                (
                    f"download peak RSS flat with the recording's size (within {FLAT_DOWNLOAD_MB} MB)",
                    f"{size(sizes[0])} → {size(sizes[-1])}: {mb(min(rss))}–{mb(max(rss))} MB, spread {spread / MB:.0f} MB",
                    spread <= FLAT_DOWNLOAD_MB * MB,
                )
            )
        fixed = [r for r in self.webhook if "req/s" in r.name]
        if fixed:
            # From when the request left the client: the client shares the two
            # cores, and its own lateness in sending is not the service's latency.
            sent = median_of(1000 * percentile(r.latency_from_send, 99) for r in fixed)
            due = median_of(1000 * percentile(r.latency_from_due, 99) for r in fixed)
            found.append((
                f"webhook p99 < 50 ms at {fixed[0].name}",
                f"{sent:.1f} ms from send, {due:.1f} ms from due (median of {len(fixed)} run(s))",
                sent < 50,
            ))
        return found

    def _targets(self) -> list[str]:
        rows = [[what, value, "–" if ok is None else ("met" if ok else "**missed**")] for what, value, ok in self.targets()]
        return ["## Targets", "", table(("target", "measured", ""), rows)]

    def markdown(self) -> str:
        parts = ["# callreel benchmarks", "", *self.header, ""]
        parts += self._targets() + [""]
        if self.settings_note:
            parts += ["## Compositor defaults", "", self.settings_note, ""]
        for section in (self._compose, self._segments, self._split, self._pipeline, self._per_minute, self._download, self._webhook):
            body = section()
            if body:
                parts += body + [""]
        if self.notes:
            parts += ["## Notes", "", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(parts)


def hand_written(document: str) -> str:
    """The hand-written tail of a document: from the HAND_WRITTEN line to the end ("" without one)."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == HAND_WRITTEN), None)
    return "" if start is None else "".join(lines[start:])


def _block_markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: generated by its own bench script, kept by bench/run.py -->", f"<!-- /{name} -->"


def blocks(document: str) -> list[str]:
    """The separately generated blocks of a document (e.g. bench/fal_latency.py's), markers included."""
    found, at = [], 0
    while (start := document.find("<!-- ", at)) != -1:
        end_of_line = document.find("-->", start)
        head = document[start + 5 : end_of_line].strip()
        if ": generated by its own bench script" not in head:
            at = end_of_line + 3
            continue
        closing = f"<!-- /{head.split(':', 1)[0]} -->"
        end = document.find(closing, start)
        if end == -1:
            break
        found.append(document[start : end + len(closing)])
        at = end + len(closing)
    return found


def write_block(path: Path, name: str, text: str) -> None:
    """Put (or replace) block ``name`` in the document, just above its hand-written tail."""
    opening, closing = _block_markers(name)
    block = f"{opening}\n{text.rstrip()}\n{closing}"
    document = path.read_text() if path.exists() else ""
    old = next((b for b in blocks(document) if b.startswith(opening)), None)
    if old is not None:
        document = document.replace(old, block)
    else:
        tail = hand_written(document)
        head = document[: len(document) - len(tail)] if tail else document
        document = head.rstrip("\n") + "\n\n" + block + "\n\n" + tail
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(document)
    partial.replace(path)


def write(path: Path, text: str) -> None:
    """Write the generated ``text`` to ``path``, keeping the hand-written tail and the separately generated blocks.

    Through a temp file and a rename, so a run stopped mid-write leaves the old document whole.
    """
    old = path.read_text() if path.exists() else ""
    tail = hand_written(old)
    kept = [b for b in blocks(old[: len(old) - len(tail)] if tail else old) if b not in text]
    if kept:
        text = text.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"
    if tail:
        text = text.rstrip("\n") + "\n\n" + tail
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(text)
    partial.replace(path)


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between the ``name`` markers of the document's hand-written part, replacing what was there.

    For the benchmarks run on their own (``bench/scale.py``): their figures live in the
    hand-written part, which a full ``bench/run.py`` run carries over unchanged, and a new
    run of theirs replaces only its own block. Without markers yet, the block is added
    right after the HAND_WRITTEN line (which is added too if the document has none).
    """
    begin, end = f"<!-- {name}: begin (written by its benchmark) -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    document = path.read_text() if path.exists() else f"# callreel benchmarks\n\n{HAND_WRITTEN}\n"
    if begin in document and end in document:
        head, rest = document.split(begin, 1)
        document = head + block.rstrip("\n") + rest.split(end, 1)[1]
    else:
        if HAND_WRITTEN not in document:
            document = document.rstrip("\n") + f"\n\n{HAND_WRITTEN}\n"
        head, tail = document.split(HAND_WRITTEN, 1)
        document = head + HAND_WRITTEN + "\n\n" + block + tail
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(document)
    partial.replace(path)
