"""Time to video and money per call with fal.ai: the real services against the fal simulator (issue #26).

    .venv/bin/python bench/fal_latency.py [--quick] [--scale 20]   # needs PostgreSQL and RabbitMQ on 127.0.0.1

Every call goes through the deployed shape (tests/e2e/harness.py): gunicorn,
one Dramatiq process per service, RabbitMQ, PostgreSQL, moto's S3 and the fal
simulator (tests/support/fake_fal.py) at speed 2 and concurrency 10, with
realistic two-party calls (bench/media.py: two voices taking turns). Two ways
are run through the same simulator:

- **ours**: ``GENERATION_MODE=speech``, the global cap FAL_MAX_CONCURRENT_JOBS=10;
- **the plan**: ``GENERATION_MODE=full`` (whole sides), no cap, a fixed
  10-minute job timeout. (Our ``full`` still cuts a side at the model's 300 s
  limit, so it is kinder to long calls than the plan's one job per side.)

**Time scale.** fal's clock runs ``--scale`` times faster than the wall clock
(queue, compute; the fixed timeout scaled alike), so a 30-minute call's
generation takes minutes; everything else (download, split, compose, the
messages) runs at real speed. Figures that are fal time are given in
simulated seconds (wall × scale) beside the goals; "last fal result → video"
is wall-clock time, as it is the compositor's own. The bill is the
simulator's: seconds of video made × list price (shared/fal_models.py).

The section it writes into docs/benchmarks.md sits between markers that
bench/report.py keeps when the rest of the document is rewritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import media  # noqa: E402

SPEED, CONCURRENCY = 2.0, 10
MODEL = "fal-ai/stable-avatar"


@dataclass
class CallFigures:
    label: str
    minutes: float
    status: str
    seconds: float  # webhook → completed, wall
    jobs: int
    billed_seconds: float
    dollars: float
    speech_seconds: float  # what the two sides actually speak
    bound: float  # B in simulated seconds
    last_result_to_video: float | None  # wall seconds
    compositors: int


@dataclass
class BurstFigures:
    calls: int
    long_calls: int
    long_minutes: float
    statuses: dict[str, int]
    seconds: float
    rate_limited: int
    submits: int
    short_worst: float  # the slowest 1-minute call, webhook → completed (wall)
    short_bound: float  # its own B (simulated)
    problems: list[str] = field(default_factory=list)


def _video_maker(folder: Path):
    """A navy talking-head stand-in as long as the job's audio (cached per whole second)."""
    made: dict[int, bytes] = {}
    lock = threading.Lock()  # the fake serves downloads from many threads: one FFmpeg per length

    def make(seconds: float) -> bytes:
        whole = max(1, int(round(seconds)))
        with lock:
            return made[whole] if whole in made else _make(whole)

    def _make(whole: int) -> bytes:
        if whole not in made:
            path = folder / f"fal-{whole}.mp4"
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=navy:s=64x64:r=15:d={whole}",
                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                check=True,
            )
            made[whole] = path.read_bytes()
        return made[whole]

    return make


def _bound(request_ids: list[str], bill: dict, scale: float) -> float:
    """B = max(the longest job's compute, all jobs' compute ÷ the concurrency limit), in simulated seconds."""
    mine = [r for r in bill["records"] if r["request_id"] in set(request_ids)]
    compute = [r["seconds"] * SPEED for r in mine]
    return max(max(compute, default=0.0), sum(compute) / CONCURRENCY)


def _call_request_ids(call_id: str) -> list[str]:
    from shared.models import Call

    row = Call.get_by_id(call_id)
    return [r for r in (row.fal_job_id or "").split(",") if r]


def _last_result_to_video(call_id: str) -> float | None:
    from peewee import fn

    from shared.models import Call, Segment

    last = Segment.select(fn.MAX(Segment.finished_at)).where(Segment.call_id == call_id).scalar()
    done = Call.get_by_id(call_id).compositor_finished_at
    if last is None or done is None:
        return None
    if isinstance(last, str):
        last = dt.datetime.fromisoformat(last)
    return (done - last).total_seconds()


def _send(pipeline, body: bytes, seconds: float):
    sent = pipeline.send_call(body, post=False, RecordingDuration=str(int(seconds)))
    return sent


def _wait(pipeline, ids: list[str], started: float, timeout: float) -> dict[str, float]:
    from shared import keys
    from shared.models import Call, VideoStatus

    ended: dict[str, float] = {}
    deadline = started + timeout
    while len(ended) < len(ids) and time.monotonic() < deadline:
        for call in Call.select(Call.id, Call.video_status).where(Call.id.in_([i for i in ids if i not in ended])):
            if call.video_status in VideoStatus.TERMINAL and (call.video_status == VideoStatus.FAILED or pipeline.exists(keys.video_key(call.id))):
                ended[call.id] = time.monotonic()
        time.sleep(0.3)
    return ended


def run_lengths(pipeline, label: str, minutes: list[float], cache: Path, scale: float, compositors: int) -> list[CallFigures]:
    from shared.models import Call

    figures = []
    for length in minutes:
        seconds = length * 60
        talk = media.conversation(seconds + 0.01 * len(figures) + (0.003 if label == "plan" else 0), cache)
        speech = sum(b - a for a, b in talk.caller_speech) + sum(b - a for a, b in talk.callee_speech)
        pipeline.fal.reset()
        pipeline.fal.simulate(_simulation(scale))
        sent = _send(pipeline, talk.path.read_bytes(), seconds)
        started = time.monotonic()
        answer = pipeline.post_webhook(sent.form)
        assert answer.status_code == 202, answer.text
        ended = _wait(pipeline, [sent.call_id], started, timeout=max(600.0, seconds * 2))
        row = Call.get_by_id(sent.call_id)
        bill = pipeline.fal.bill()
        ids = _call_request_ids(sent.call_id)
        mine = [r for r in bill["records"] if r["request_id"] in set(ids)]
        figures.append(
            CallFigures(
                label, length, row.video_status or "?", (ended.get(sent.call_id, time.monotonic()) - started),
                len(mine), sum(r["seconds"] for r in mine), sum(r["dollars"] for r in mine), speech,
                _bound(ids, bill, scale), _last_result_to_video(sent.call_id), compositors,
            )
        )
        f = figures[-1]
        print(f"  {label} {length:g} min: {f.status} in {f.seconds:.1f} s wall; billed {f.billed_seconds:.0f} s ${f.dollars:.2f}; "
              f"429s {bill['rate_limited']}; last result → video {f.last_result_to_video}", flush=True)
        if f.status != "completed":
            print(f"    why: {row.video_error_message} | caller: {row.caller_error} | callee: {row.callee_error}", flush=True)
    return figures


def run_burst(pipeline, calls: int, long_calls: int, long_minutes: float, cache: Path, scale: float) -> BurstFigures:
    """``calls`` calls within a minute: ``long_calls`` of ``long_minutes`` first, then 1-minute ones."""
    from shared.models import Call

    pipeline.fal.reset()
    pipeline.fal.simulate(_simulation(scale))
    bodies = [(media.conversation(long_minutes * 60 + 0.37 * i, cache).path.read_bytes(), long_minutes * 60) for i in range(long_calls)]
    bodies += [(pipeline.recording(60.0), 60.0) for _ in range(calls - long_calls)]
    sent = [(_send(pipeline, body, seconds), seconds) for body, seconds in bodies]
    started = time.monotonic()
    gap = min(1.0, 50.0 / max(1, calls))  # all within a minute
    posted: dict[str, float] = {}

    def post(item):
        index, (s, _) = item
        time.sleep(index * gap)
        posted[s.call_id] = time.monotonic()
        return pipeline.post_webhook(s.form)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, enumerate(sent)))
    ids = [s.call_id for s, _ in sent]
    ended = _wait(pipeline, ids, started, timeout=1800)
    bill = pipeline.fal.bill()
    rows = {c.id: c for c in Call.select().where(Call.id.in_(ids))}
    statuses: dict[str, int] = {}
    for row in rows.values():
        statuses[row.video_status] = statuses.get(row.video_status, 0) + 1
    problems = [f"webhook answered {a.status_code}" for a in answers if a.status_code != 202]
    problems += [f"{i}: did not end ({pipeline.describe(i)[:300]})" for i in ids if i not in ended]
    problems += [f"{i}: lost" for i in ids if i not in rows]
    short = [(s.call_id, ended[s.call_id] - posted[s.call_id]) for s, secs in sent if secs == 60.0 and s.call_id in ended]
    worst_id, worst = max(short, key=lambda x: x[1]) if short else ("", float("nan"))
    return BurstFigures(
        calls, long_calls, long_minutes, statuses, max(ended.values(), default=time.monotonic()) - started, bill["rate_limited"], bill["submitted"] + bill["rate_limited"],
        worst, _bound(_call_request_ids(worst_id), bill, scale) if worst_id else float("nan"), problems,
    )


def _simulation(scale: float):
    from tests.support.fake_fal import Simulation

    return Simulation(queue_seconds=2.0, speed=SPEED, concurrency=CONCURRENCY, burst=20, submits_per_second=5.0, time_scale=scale)


def markdown(ours: list[CallFigures], plan: list[CallFigures], burst: BurstFigures | None, scale: float, command: str) -> str:
    lines = [
        "## Time to video and money with fal.ai (simulated)",
        "",
        f"`{command}` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC). The real services (gunicorn, one Dramatiq process per service,",
        f"RabbitMQ, PostgreSQL, moto S3) against the fal simulator at speed {SPEED:g} and concurrency {CONCURRENCY}, model {MODEL} at its list price.",
        f"**fal's clock runs {scale:g}× faster than the wall clock**: fal figures are simulated seconds (wall × {scale:g}); the rest is wall-clock.",
        "B = max(the longest job's compute, all jobs' compute ÷ the concurrency limit), simulated seconds. Goals from issue #26 beside each figure.",
        "",
        "Webhook → completed is wall-clock; its goal, 1.2 × B + 30 s, is taken with B on the wall clock (B ÷ scale) and the 30 s of pipeline at real speed.",
        "",
        "| way | call | status | webhook → completed (wall s) | goal ≤ 1.2 B/scale + 30 | B (sim s) | jobs | billed s | $ | speech s | goal billed ≤ 1.1 × speech | last result → video (wall s, goal ≤ 20) | compositors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in [*ours, *plan]:
        goal = 1.2 * f.bound / scale + 30
        late = f.last_result_to_video
        lines.append(
            f"| {f.label} | {f.minutes:g} min | {f.status} | {f.seconds:.0f} | {goal:.0f} {'✓' if f.seconds <= goal else '✗'} | {f.bound:.0f} | {f.jobs} | "
            f"{f.billed_seconds:.0f} | {f.dollars:.2f} | {f.speech_seconds:.0f} | {1.1 * f.speech_seconds:.0f} "
            f"{'✓' if f.billed_seconds <= 1.1 * f.speech_seconds else '✗'} | "
            f"{'—' if late is None else f'{late:.1f}'} {'' if late is None else ('✓' if late <= 20 else '✗')} | {f.compositors} |"
        )
    if burst is not None:
        share = burst.rate_limited / max(1, burst.submits)
        lines += [
            "",
            f"**Burst**: {burst.calls} calls within a minute (ours), {burst.long_calls} of them {burst.long_minutes:g}-minute calls sent first, "
            f"the others 1-minute calls: "
            f"{burst.statuses}; all ended in {burst.seconds:.0f} s wall; 429s {burst.rate_limited} of {burst.submits} submits "
            f"({share:.1%}, goal ≤ 1 % {'✓' if share <= 0.01 else '✗'}); the slowest 1-minute call took {burst.short_worst:.0f} s wall, "
            f"against 2 × its own B = {2 * burst.short_bound / scale:.0f} s wall + 30 s of pipeline "
            f"{'✓' if burst.short_worst <= 2 * burst.short_bound / scale + 30 else '✗'}.",
        ]
        lines += [f"- PROBLEM: {p}" for p in burst.problems[:10]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1- and 5-minute calls, a burst of 12 calls")
    parser.add_argument("--minutes", default="1,5,10,30")
    parser.add_argument("--scale", type=float, default=20.0, help="fal's clock against the wall clock (default 20)")
    parser.add_argument("--compositors", default="1,2", help="compositor processes to measure with (comma list)")
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--skip-plan", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--cache", type=Path, default=ROOT / ".callreel" / "bench-cache")
    args = parser.parse_args(argv)
    import logging
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the services it started
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: one line per request otherwise
    if args.quick:
        args.minutes, args.burst, args.compositors = "1,5", 12, "1"
    minutes = [float(m) for m in args.minutes.split(",") if m.strip()]
    compositors = [int(c) for c in args.compositors.split(",") if c.strip()]
    args.cache.mkdir(parents=True, exist_ok=True)

    from tests.e2e.harness import Pipeline
    from tests.support import services

    common = {
        "FAL_POLL_INTERVAL": "0.5", "STAGE_DEADLINE": "7200", "RECORDING_MAX_BYTES": str(60_000_000),
        "RECORDING_MAX_SECONDS": "3700", "MAX_CALL_SECONDS": "3700", "PANEL_WIDTH": "320", "PANEL_HEIGHT": "240", "VIDEO_FPS": "15",
        "FAL_MAX_RETRIES": "1", "COMPOSE_TIMEOUT": "3600", "TRANSCRIPT_MAX_BYTES": str(2_000_000),
    }
    ways = {
        "ours": {"GENERATION_MODE": "speech", "FAL_MAX_CONCURRENT_JOBS": str(CONCURRENCY), "FAL_JOB_TIMEOUT": "3600"},
        # The plan's fixed 10-minute timeout, on fal's scaled clock.
        # SEGMENT_MAX_SECONDS=0: whole sides, cut only at the model's own limit (not ours, 60 s, meant for latency).
        "plan": {
            "GENERATION_MODE": "full", "SEGMENT_MAX_SECONDS": "0", "FAL_MAX_CONCURRENT_JOBS": "0",
            "FAL_JOB_TIMEOUT": str(max(1, int(600 / args.scale))),
        },
    }
    ours: list[CallFigures] = []
    plan: list[CallFigures] = []
    burst = None
    with services.private_stack("callreel-fal-bench-") as stack:
        pg_url, broker_url, s3, root = stack.pg_url, stack.broker_url, stack.s3, stack.root
        for way, env in ways.items():
            if way == "plan" and args.skip_plan:
                continue
            with Pipeline(root / way, pg_url=pg_url, broker_url=broker_url, s3_server=s3, threads=4, **common, **env) as pipeline:
                pipeline.fal.video_maker = _video_maker(root)
                for count in compositors if way == "ours" else compositors[:1]:
                    if count != 1:
                        pipeline.restart("compositor", processes=count)
                    print(f"{way}, {count} compositor process(es):", flush=True)
                    (ours if way == "ours" else plan).extend(run_lengths(pipeline, way, minutes, args.cache, args.scale, count))
                if way == "ours" and args.burst:
                    print(f"burst of {args.burst} calls:", flush=True)
                    burst = run_burst(pipeline, args.burst, max(1, args.burst // 25), minutes[-1] if args.quick else 10.0, args.cache, args.scale)
                    print(f"  {burst}", flush=True)
        command = "make bench-fal" + (" QUICK=1" if args.quick else "")
        text = markdown(ours, plan, burst, args.scale, command)
        print(text)
        from bench.report import write_block

        write_block(args.output, "fal-latency", text)
        return 0


if __name__ == "__main__":
    sys.exit(main())
