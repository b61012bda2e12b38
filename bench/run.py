"""callreel's benchmark: per-stage speed and memory, and our FFmpeg commands against the original plan's.

    make bench                                   # = .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --minutes 1,5,10 --repeat 3
    .venv/bin/python bench/run.py --quick --output /tmp/bench.md   # a smoke run, seconds not minutes
    .venv/bin/python bench/run.py --ffmpeg "$(bash scripts/image-ffmpeg.sh)" --also-ffmpeg /usr/bin
                                                 # the images' FFmpeg, the machine's for the compose ratio too

Prints Markdown tables and writes them to docs/benchmarks.md (``--output``;
a ``--quick`` run writes only where ``--output`` says), keeping what follows
the file's hand-written marker (``bench.report.HAND_WRITTEN``). Figures, not
assertions: nothing here fails because the machine is slow. Needs FFmpeg,
espeak-ng, PostgreSQL and RabbitMQ (``--skip webhook`` without the last two).
Inputs are generated once and cached in .callreel/bench-cache.

``--scale`` adds the console at scale (``bench/scale.py``: a million calls in
PostgreSQL, the overview, the list and a call page at p95), off by default.

Sections (``--skip`` any of them): ``compose`` (ours vs the plan, quality,
encoder sweep), ``split`` (ours vs the plan's two passes), ``pipeline``
(download, split, compose, upload, each in a fresh worker process),
``download`` (memory while streaming a large recording), ``webhook`` (latency
and throughput of the real gunicorn app).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from bench import compare, ffmpegs, media  # noqa: E402
from bench.compare import Encoder, Render  # noqa: E402
from bench.ingest_load import WebhookBench, percentile  # noqa: E402
from bench.measure import MB, loadavg, median_stage  # noqa: E402
from bench.pipeline import STAGE_ORDER, PipelineRun, Rig, download_flatness, run_pipeline  # noqa: E402
from bench.report import ComposeSection, Elsewhere, Report, per_minute, stage_table, write  # noqa: E402

__all__ = ["main", "parse_args", "SWEEP", "QUICK_SWEEP"]

SECTIONS = ("compose", "split", "pipeline", "download", "webhook")
MBTREE = "mbtree=1:rc-lookahead=10:weightp=0"
# The encoder settings tried on our graph. superfast and ultrafast turn
# mbtree off, which costs them bits at the same CRF (the sweep's "preset alone"
# rows): MBTREE puts it back with a short lookahead. medium crf 23 is the plan's
# encoder on our graph.
SWEEP = (
    *(Encoder("superfast", crf, MBTREE) for crf in (19, 20, 21, 22, 23)),
    # b-adapt=0: fixed B-frame placement instead of the fast decision pass (less CPU, no SSIM lost on talking heads: the sweep's b-adapt=0 rows).
    *(Encoder("superfast", crf, f"{MBTREE}:b-adapt=0") for crf in (20, 21)),
    # cabac=0: CAVLC entropy coding, cheaper than CABAC and a bigger file for the same picture.
    *(Encoder("superfast", crf, f"{MBTREE}:cabac=0") for crf in (19, 20, 21)),
    *(Encoder("veryfast", crf) for crf in (20, 21, 22)),
    Encoder("faster", 22),
    Encoder("superfast", 21),
    Encoder("ultrafast", 21, MBTREE),
    Encoder("medium", 23),
)
QUICK_SWEEP = (Encoder("superfast", 21, MBTREE), Encoder("veryfast", 23))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", default="1,5,10", help="call lengths for the pipeline and split (comma list)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (medians are reported)")
    parser.add_argument("--compare-seconds", type=float, default=30, help="length of the side videos in the compose comparison")
    parser.add_argument("--sizes", default="512x512,1280x720", help="fal-like side video sizes for the compose comparison")
    parser.add_argument("--sweep-repeat", type=int, default=2, help="runs of each encoder setting in the sweep")
    parser.add_argument("--download-mb", default="2,20,200,400", help="recording sizes for the download memory check (MB)")
    parser.add_argument("--rate", type=float, default=100, help="webhook requests per second (fixed-rate load)")
    parser.add_argument("--rate-seconds", type=float, default=10, help="how long the fixed-rate load lasts")
    parser.add_argument("--burst", type=int, default=1000, help="requests in the closed-loop burst")
    parser.add_argument("--concurrency", type=int, default=8, help="clients in the burst")
    parser.add_argument("--skip", default="", help=f"sections to leave out: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny inputs, one repetition")
    parser.add_argument("--output", type=Path, help="Markdown file to write (default docs/benchmarks.md; none for --quick)")
    parser.add_argument("--ffmpeg", type=Path, help="folder whose ffmpeg and ffprobe the whole run uses (default: PATH's)")
    parser.add_argument(
        "--also-ffmpeg", default="", help="folders of other FFmpeg builds to run the plan-vs-default compose comparison under too (comma list)"
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".callreel" / "bench-cache", help="where generated inputs are kept")
    parser.add_argument(
        "--scale", action="store_true",
        help="also the console at scale: a million calls in PostgreSQL, pages at p95 (bench/scale.py; minutes)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.repeat, args.compare_seconds, args.sizes = "0.1", 1, 2, "512x512"
        args.sweep_repeat, args.download_mb, args.rate, args.rate_seconds = 1, "1,6", 20, 1
        args.burst, args.concurrency = 20, 4
    elif args.output is None:
        args.output = ROOT / "docs" / "benchmarks.md"
    args.minutes = [float(m) for m in str(args.minutes).split(",") if m.strip()]
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.download_mb = [float(m) for m in str(args.download_mb).split(",") if m.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.also_ffmpeg = [Path(p.strip()) for p in args.also_ffmpeg.split(",") if p.strip()]
    unknown = args.skip - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) to skip: {', '.join(sorted(unknown))}")
    return args


def say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S} load {loadavg():.1f}] {message}", file=sys.stderr, flush=True)


def _header(args: argparse.Namespace) -> list[str]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    ffmpeg = out("ffmpeg", "-version").splitlines()[0] if shutil.which("ffmpeg") else "?"
    return [
        f"Generated by `bench/run.py` ({' '.join(sys.argv[1:]) or 'defaults'}) on {dt.datetime.now():%Y-%m-%d %H:%M}, "
        f"commit {out('git', 'rev-parse', '--short', 'HEAD')}.",
        "",
        f"Machine: {os.cpu_count()} × {model}, {memory:.0f} GB RAM; {ffmpeg}; Python {platform.python_version()}. "
        f"The machine is shared with other work: load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} at the start. "
        f"Every figure is the median of {args.repeat} run(s) unless said otherwise.",
    ]


def run_compose(args: argparse.Namespace, workdir: Path, report: Report, size: str) -> None:
    sweep = QUICK_SWEEP if args.quick else SWEEP
    default = compare.default_encoder()
    say(f"compose: {size} inputs")
    inputs = compare.compose_inputs(size, args.compare_seconds, args.cache)
    folder = workdir / f"compose-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    say(f"compose {size}: plan vs ours (default {default.label}), {args.repeat}×")
    plan, shipped = compare.interleaved(
        lambda: compare.render_plan(inputs, folder, 1),
        lambda: compare.render_ours(inputs, folder, default, 1, overlays=True, measure_quality=False),
        args.repeat,
    )
    bare = compare.render_ours(inputs, folder, default, args.repeat, overlays=False, measure_quality=True)
    result = ComposeSection(size=size, seconds=args.compare_seconds, plan=plan, shipped=shipped, bare=bare)
    say(f"compose {size}: ours with and without burned captions, {args.repeat}×")
    result.captions = compare.interleaved(
        lambda: compare.render_ours(inputs, folder, default, 1, overlays=True, measure_quality=False),
        lambda: compare.render_ours(inputs, folder, default, 1, overlays=True, measure_quality=False, captions="burn"),
        args.repeat,
    )
    for layout in compare.LAYOUTS:
        say(f"compose {size}: ours in the {layout} layout, {args.repeat}×")
        framed = compare.render_ours(inputs, folder, default, args.repeat, overlays=True, measure_quality=False, layout=layout)
        framed_bare = compare.render_ours(inputs, folder, default, 1, overlays=False, measure_quality=True, layout=layout)
        result.layouts.append((framed, framed_bare))
    # Round by round over the whole sweep, so a machine that slows down during it slows every setting alike.
    rounds: list[list[Render]] = [[] for _ in sweep]
    for index in range(args.sweep_repeat):
        for renders, encoder in zip(rounds, sweep):
            say(f"compose {size}: sweep {encoder.label}, round {index + 1}")
            renders.append(compare.render_ours(inputs, folder, encoder, 1, overlays=False, measure_quality=index == 0))
    result.sweep = [compare.merge(renders) for renders in rounds]
    result.choice = compare.choose(plan, result.sweep, default=default)
    for build in args.also_ffmpeg:
        with ffmpegs.first_on_path(build):
            result.elsewhere.append(compose_elsewhere(args, inputs, folder, default))
    report.compose.append(result)
    shutil.rmtree(folder, ignore_errors=True)


def compose_elsewhere(args: argparse.Namespace, inputs: compare.ComposeInputs, folder: Path, default: Encoder) -> Elsewhere:
    """The plan against our default, renders in ``folder``, under the FFmpeg first on PATH: speed, our quality and size."""
    version = ffmpegs.version()
    say(f"compose {inputs.size}: plan vs ours under FFmpeg {version}, {args.repeat}×")
    plan, shipped = compare.interleaved(
        lambda: compare.render_plan(inputs, folder, 1),
        lambda: compare.render_ours(inputs, folder, default, 1, overlays=True, measure_quality=False),
        args.repeat,
    )
    bare = compare.render_ours(inputs, folder, default, 1, overlays=False, measure_quality=True)
    return Elsewhere(version=version, plan=plan, shipped=shipped, bare=bare)


def run_segments(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    counts = (1, 2) if args.quick else (1, 3, 6, 12)
    say(f"compose: memory by segments per side ({', '.join(map(str, counts))})")
    report.segment_seconds = 2 if args.quick else 10
    report.segments = compare.segment_memory(workdir / "segments", args.cache, counts, seconds=report.segment_seconds)


HISTORY = (
    "How they were chosen: the rule takes the fastest family of settings (preset and x264 parameters, ranked by "
    "the median CPU time of all its renders, since the CRF hardly changes the CPU) that has a render whose SSIM is "
    "no more than 0.005 below the plan's and whose video is at most 1.5× the plan's, and in it the highest CRF that "
    "passes (the smallest file at the plan's quality), on each input size; a family within 10 % of the fastest is "
    "as fast (the run-to-run noise here: two full runs on one day ranked superfast + cabac=0 5-11 % slower than "
    "the default, then 5-8 % faster), so the current default stays when it is one of those. When this benchmark was first run the "
    "default was superfast + mbtree at CRF 23: its SSIM was 0.013 below the plan's on 512×512 sides and 0.018 below "
    "on 720p ones (a visibly softer picture, at half the plan's size), so VIDEO_CRF became 21. superfast + mbtree "
    "stays: ultrafast fails on size, superfast without mbtree on size, veryfast and slower presets pass but cost "
    "more CPU. Three graph changes came out of the same measurements: 720p sides are reduced with `area` rather "
    "than `bilinear` (SSIM +0.005 at the same CPU; with bilinear 720p needed CRF 20); the speaker highlight is "
    "drawn as four strips instead of one hollow panel-sized box (its cost went from 0.64 to 0.05 s of CPU per "
    "30 s); and the panels take the side videos' shape when both sides share one (512×512 sources: 960×480 out "
    "instead of 1280×480 with bars, a sixth less x264 time). Later, the graph's filters were put on one thread "
    "(`-filter_complex_threads 1`): FFmpeg's default slice threading splits each small per-frame filter job "
    "across threads the decoders and x264 already keep busy, and one thread rendered 4-8 % faster on two cores. "
    "Last, a side reduced to half its size or more (720p sides in 640×360 panels) is decoded without the "
    "deblocking of its B-frames, which the reduction averages away: 4-5 % less CPU and wall on 720p sides, SSIM "
    "0.9526 against 0.9524 with it (CRF 18 sources) and 0.9770 against 0.9770 (CRF 30 sources); skipping it on "
    "every frame cost 0.008 SSIM on the CRF 30 sources, and on 512×512 sides, barely reduced, 0.018."
)


def settings_note(report: Report) -> str:
    default = compare.default_encoder()
    lines = [f"Current defaults: `VIDEO_PRESET={default.preset}`, `VIDEO_CRF={default.crf}`, `VIDEO_X264_PARAMS={default.params}`."]
    for section in report.compose:
        if section.choice is None:
            lines.append(f"{section.size}: no setting tried meets the plan's quality within the rule.")
            continue
        chosen = section.choice.encoder
        same = chosen == default
        lines.append(f"{section.size}: the rule picks **{chosen.label}**" + (" — the current default." if same else " — not the current default."))
    return " ".join(lines) + "\n\n" + HISTORY


def run_pipeline_section(args: argparse.Namespace, rig: Rig, report: Report, minutes: float) -> None:
    longest = max(args.minutes) * 60
    base_seconds = min(60.0, longest)
    bases = {side: media.side_video(side, "512x512", base_seconds, args.cache) for side in ("caller", "callee")}
    seconds = minutes * 60
    call = media.conversation(seconds, args.cache)
    videos = {side: media.looped(bases[side], seconds, args.cache) if seconds > base_seconds else bases[side] for side in bases}
    runs = []
    for index in range(args.repeat):
        runs.append(run_pipeline(rig, call, videos, args.cache, progress=lambda s: say(f"pipeline {minutes:g} min, run {index + 1}: {s}")))
    stages = {name: median_stage([r.stages[name] for r in runs]) for name in STAGE_ORDER if name in runs[0].stages}
    run = PipelineRun(minutes=minutes, stages=stages)
    report.pipeline.append(run)
    wall, cpu = per_minute(run)
    say(f"pipeline {minutes:g} min: {wall:.2f} s wall, {cpu:.2f} s CPU per call minute\n{stage_table(run)}")


def run_split(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    for minutes in args.minutes:
        say(f"split: ours vs plan, {minutes:g} min")
        call = media.conversation(minutes * 60, args.cache)
        report.split[minutes] = compare.split_comparison(call.path, workdir / f"split-{minutes:g}", args.repeat)


def run_download(args: argparse.Namespace, rig: Rig, report: Report) -> None:
    say(f"download: {', '.join(f'{m:g} MB' for m in args.download_mb)}")
    report.download = download_flatness(rig, [round(m * MB) for m in args.download_mb])


def run_webhook(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    bench = WebhookBench(workdir / "webhook")
    (workdir / "webhook").mkdir(exist_ok=True)
    say("webhook: starting gunicorn")
    try:
        bench.start()
        bench.warm_up()
        runs = []
        for index in range(args.repeat):
            say(f"webhook: {args.rate:g} req/s for {args.rate_seconds:g} s, run {index + 1}")
            fixed = bench.fixed_rate(args.rate, args.rate_seconds)
            say(f"webhook: p99 {1000 * percentile(fixed.latency_from_send, 99):.1f} ms from send at {fixed.rate:.1f} req/s")
            say(f"webhook: burst of {args.burst}, {args.concurrency} at a time, run {index + 1}")
            burst = bench.burst(args.burst, args.concurrency)
            runs += [fixed, burst]
        report.webhook += sorted(runs, key=lambda r: "req/s" not in r.name)
        stored = bench.stored_calls()
        expected = 20 + sum(r.requests for r in runs)
        if stored != expected:
            report.notes.append(f"webhook: {stored} calls stored for {expected} accepted callbacks")
    finally:
        bench.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ffmpeg:
        ffmpegs.put_first(args.ffmpeg)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: one line per request otherwise
    args.cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="callreel-bench-"))
    report = Report(header=_header(args), repeat=args.repeat, ffmpeg=ffmpegs.version())
    def section(name: str, run) -> None:
        """Run one section; a failure is reported in the document, and the other sections still run.

        The document is rewritten after every section, so a run stopped half-way keeps what it measured.
        """
        if name in args.skip:
            return
        try:
            run()
        except Exception as exc:  # a figure missing is better than a whole run lost
            failed.append(name)
            report.notes.append(f"section {name} failed: {type(exc).__name__}: {str(exc)[-500:]}")
            say(f"{name} failed: {exc}")
        if args.output:
            write(args.output, report.markdown() + "\n_Partial: the run was still going when this was written._\n")

    failed: list[str] = []
    try:
        for size in args.sizes:
            section("compose", lambda: run_compose(args, workdir, report, size))
        if report.compose:
            report.settings_note = settings_note(report)
        section("compose", lambda: run_segments(args, workdir, report))
        section("split", lambda: run_split(args, workdir, report))
        if {"pipeline", "download"} - args.skip:
            rig = Rig(workdir)
            try:
                for minutes in args.minutes:
                    section("pipeline", lambda: run_pipeline_section(args, rig, report, minutes))
                section("download", lambda: run_download(args, rig, report))
            finally:
                rig.stop()
        section("webhook", lambda: run_webhook(args, workdir, report))
        report.notes.append(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    text = report.markdown()
    print(text)
    if args.output:
        write(args.output, text)
        say(f"written to {args.output}")
    if args.scale:  # its figures go to the document's hand-written part, which the write above kept
        from bench import scale

        quick = ["--calls", "1000", "--requests", "3"] if args.quick else []
        if scale.main([*quick, "--output", str(args.output) if args.output else "none"]) != 0:
            failed.append("scale")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
