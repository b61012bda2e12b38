"""Time to video and money per call with fal.ai: the real services against the fal simulator (issue #26).

    .venv/bin/python bench/fal_latency.py [--quick] [--scale 20]   # needs PostgreSQL and RabbitMQ on 127.0.0.1
    .venv/bin/python bench/fal_latency.py --long                     # only the 10- and 30-minute calls, no burst
    .venv/bin/python bench/fal_latency.py --short                    # the rest: 1- and 5-minute calls, the burst

A run keeps the section's rows it did not measure (marked † with their time), so
``--long`` and ``--short`` make one section in two runs of under 25 minutes each.

Every call goes through the deployed shape (tests/e2e/harness.py): gunicorn,
one Dramatiq process per service, RabbitMQ, PostgreSQL, moto's S3 and the fal
simulator (tests/support/fake_fal.py) at speed 2 and concurrency 10, with
realistic two-party calls (bench/media.py: two voices taking turns). Every
measured call has audio of its own (the same turns over a different line
hiss, :func:`bench.media.conversation`'s ``variant``), so none is served from
generation's video cache: each row generates and bills. The audio files are
kept in ``--cache`` between runs; nothing else is. Two ways are run through
the same simulator:

- **ours**: ``GENERATION_MODE=speech``, the global cap FAL_MAX_CONCURRENT_JOBS=10,
  chunked compose (COMPOSE_CHUNK_SECONDS, its default);
- **the plan**: ``GENERATION_MODE=full`` with ``SEGMENT_MAX_SECONDS=0`` (whole
  sides, cut only at the model's 300 s limit), no cap, a fixed 10-minute job
  timeout on fal's clock, one compose pass (COMPOSE_CHUNK_SECONDS=0). The plan
  proper sends each whole side as one job, which its timeout cancels once a
  side computes more than 600 s (sides over 5 minutes at speed 2): those rows
  say so, and the longer ones (``--plan-max-minutes``) are not run at all.
  FAL_JOB_TIMEOUT is a floor in our code (a long segment gets more); no job of
  the plan's computes more than 598 s (299 s × speed 2), so no figure depends
  on it, and the run checks that.

**Two clocks** (bench/fal_figures.py). fal's clock runs ``--scale`` times faster
than the wall clock (queue, compute; the plan's timeout and the poll interval
scaled alike), so a 30-minute call's generation takes minutes; the pipeline's
own work (download, split, compose, the messages) runs at real speed. "sim"
figures are fal's clock, "wall" figures the benchmark's; the goal
1.2 × B + 30 s is compared on the wall clock (B ÷ scale, plus 30 s of real
pipeline). Because compose keeps its real speed while generation is scaled
down, it has ``scale`` times less generation to overlap with than against a
real fal: at scale > 1 webhook → video is pessimistic for ours; ``--scale 1``
is real fal pacing. "Last fal result" is the simulator's completion of the
call's last job (not the poll that saw it). The bill is the simulator's:
seconds of video made × list price (shared/fal_models.py).

The section it writes into docs/benchmarks.md (after every row, so a stopped
run leaves what it measured) sits between markers that bench/report.py keeps
when the rest of the document is rewritten.
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

from bench import fal_figures as figures  # noqa: E402
from bench import media  # noqa: E402

SPEED, CONCURRENCY = 2.0, 10
MODEL = "fal-ai/stable-avatar"
PROGRESS_EVERY = 30.0  # wall seconds between "still running" lines


@dataclass
class CallFigures:
    label: str
    minutes: float
    compositors: int
    status: str
    seconds: float  # webhook → video, wall
    jobs: int
    billed_seconds: float
    dollars: float
    speech_seconds: float  # what the two sides actually speak
    bound: float  # B, sim seconds
    generation: float | None  # first submit → the simulator's completion of the last job, wall seconds
    last_result_to_video: float | None  # wall seconds
    rate_limited: int
    scale: float
    notes: list[str] = field(default_factory=list)
    ran: bool = True


@dataclass
class BurstFigures:
    calls: int
    long_calls: int
    long_minutes: float
    compositors: int
    statuses: dict[str, int]
    seconds: float  # the first post → the last video, wall
    rate_limited: int
    submits: int
    short_worst: float  # the slowest 1-minute call, webhook → video (wall)
    short_bound: float  # its own B (sim)
    scale: float
    problems: list[str] = field(default_factory=list)


@dataclass
class Measured:
    """One call as the simulator and the database saw it."""

    status: str
    end: float | None  # when its video was stored (the compositor's finish), on the benchmark's monotonic clock
    jobs: int
    billed_seconds: float
    dollars: float
    computes: list[float]  # sim seconds, one per job that made a video
    first_submit: float | None
    last_result: float | None  # the simulator's completion of the last job, monotonic
    error: str


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


def measure(pipeline, call_id: str, clock: figures.Clock) -> Measured:
    """The call's fal jobs from the simulator's own books (its audio URLs name the call), its end from the database."""
    from shared.models import Call

    bill = pipeline.fal.bill()  # brings the simulator's clock up to now: every ended job has its end time
    jobs = [j for j in pipeline.fal.accepted() if call_id in str(j.input.get("audio_url", ""))]
    ids = {j.request_id for j in jobs}
    billed = [r for r in bill["records"] if r["request_id"] in ids]
    made = [j for j in jobs if j.made_video]
    row = Call.get_by_id(call_id)
    done = row.compositor_finished_at if row.video_status != "failed" else None
    return Measured(
        row.video_status or "?",
        clock.from_db(done) if done is not None else None,
        len(jobs),
        sum(r["seconds"] for r in billed),
        sum(r["dollars"] for r in billed),
        [(j.video_seconds or 0.0) * (j.sim.speed if j.sim else SPEED) for j in made],
        min((j.submitted_at for j in jobs), default=None),
        max((j.finished_at for j in made if j.finished_at is not None), default=None),
        f"{row.video_error_message} | caller: {row.caller_error} | callee: {row.callee_error}",
    )


def _send(pipeline, body: bytes, seconds: float):
    return pipeline.send_call(body, post=False, RecordingDuration=str(int(seconds)))


def _progress(pipeline, what: str, ids: list[str], ended: dict[str, float], started: float) -> str:
    from shared.models import Call

    stages: dict[str, int] = {}
    for call in Call.select(Call.id, Call.stage).where(Call.id.in_([i for i in ids if i not in ended])):
        stages[call.stage or "?"] = stages.get(call.stage or "?", 0) + 1
    jobs = pipeline.fal.accepted()
    finished = sum(1 for j in jobs if j.finished_at is not None)
    return (f"    … {what}: {time.monotonic() - started:.0f} s wall, {len(ended)}/{len(ids)} ended, "
            f"unfinished by stage {stages}, fal jobs {finished}/{len(jobs)} done")


def _wait(pipeline, ids: list[str], started: float, timeout: float, what: str) -> dict[str, float]:
    """Wait until every call is terminal with its video stored (or failed); print a line every PROGRESS_EVERY s."""
    from shared import keys
    from shared.models import Call, VideoStatus

    ended: dict[str, float] = {}
    deadline, shown = started + timeout, time.monotonic()
    while len(ended) < len(ids) and time.monotonic() < deadline:
        for call in Call.select(Call.id, Call.video_status).where(Call.id.in_([i for i in ids if i not in ended])):
            stored = call.video_status == VideoStatus.FAILED or pipeline.exists(keys.video_key(call.id))
            if call.video_status in VideoStatus.TERMINAL and stored:
                ended[call.id] = time.monotonic()
        if time.monotonic() - shown >= PROGRESS_EVERY:
            shown = time.monotonic()
            print(_progress(pipeline, what, ids, ended, started), flush=True)
        time.sleep(0.3)
    return ended


def row_variant(label: str, minutes: float, compositors: int) -> str:
    """A row's recording. The length is part of it: calls of one variant share their first minutes of hiss, and
    a 5-minute call would take the 1-minute call's first segments from generation's cache."""
    return figures.variant(label, f"{minutes:g}min", f"c{compositors}")


def run_call(pipeline, label: str, minutes: float, cache: Path, scale: float, compositors: int) -> CallFigures:
    """One call through the pipeline on a quiet simulator: its own audio, its own bill."""
    seconds = minutes * 60
    talk = media.conversation(seconds, cache, row_variant(label, minutes, compositors))
    speech = sum(b - a for a, b in talk.caller_speech) + sum(b - a for a, b in talk.callee_speech)
    pipeline.fal.reset()
    pipeline.fal.simulate(_simulation(scale))
    sent = _send(pipeline, talk.path.read_bytes(), seconds)
    clock = figures.Clock(time.monotonic(), time.time())
    started = time.monotonic()
    answer = pipeline.post_webhook(sent.form)
    assert answer.status_code == 202, answer.text
    what = f"{label} {minutes:g} min, {compositors} compositor(s)"
    ended = _wait(pipeline, [sent.call_id], started, figures.row_timeout(seconds, SPEED, scale), what)
    m = measure(pipeline, sent.call_id, clock)
    end = m.end if m.end is not None else ended.get(sent.call_id, time.monotonic())
    f = CallFigures(
        label, minutes, compositors, m.status if sent.call_id in ended else f"{m.status} (did not end)", end - started,
        m.jobs, m.billed_seconds, m.dollars, speech, figures.bound(m.computes, CONCURRENCY),
        None if m.last_result is None or m.first_submit is None else m.last_result - m.first_submit,
        None if m.last_result is None or m.end is None else m.end - m.last_result,
        pipeline.fal.bill()["rate_limited"], scale,
    )
    if label == "plan":
        f.notes += _plan_notes(seconds, m.computes)
    if m.status != "completed":
        f.notes.append(f"why: {m.error}")
    late = "—" if f.last_result_to_video is None else f"{f.last_result_to_video:.1f} s"
    print(f"  {label} {minutes:g} min, {compositors} compositor(s): {f.status} in {f.seconds:.1f} s wall "
          f"(goal {figures.video_goal(f.bound, scale):.0f}); B {f.bound:.0f} s sim; "
          f"{f.jobs} jobs billed {f.billed_seconds:.0f} s ${f.dollars:.2f}; "
          f"429s {f.rate_limited}; last fal result → video {late} wall", flush=True)
    for note in f.notes:
        print(f"    {note}", flush=True)
    return f


def _plan_notes(seconds: float, computes: list[float]) -> list[str]:
    notes = []
    if figures.plan_proper_cancelled(seconds, SPEED):
        notes.append(f"the plan proper (one job per whole side: {seconds * SPEED:.0f} s of compute) is cancelled by its fixed "
                     f"{figures.PLAN_TIMEOUT:.0f} s timeout: no video; this row is the kinder emulation, sides cut at the model's limit")
    if max(computes, default=0.0) > figures.PLAN_TIMEOUT:
        notes.append(f"a job computed {max(computes):.0f} s, past the plan's fixed {figures.PLAN_TIMEOUT:.0f} s: "
                     "our timeout (a floor) let it run, the plan's would have cancelled it")
    return notes


def skipped_plan(minutes: float, compositors: int, scale: float) -> CallFigures:
    """A plan row not run: its fixed timeout cancels every side, so it would only cost the machine time."""
    seconds = minutes * 60
    reason = (f"not run: the plan sends each {seconds:.0f} s side as one job, {seconds * SPEED:.0f} s of fal compute at speed {SPEED:g}, "
              f"past its fixed {figures.PLAN_TIMEOUT:.0f} s timeout: cancelled, no video (--plan-max-minutes to run the kinder emulation)")
    print(f"  plan {minutes:g} min: {reason}", flush=True)
    return CallFigures("plan", minutes, compositors, "cancelled (not run)", float("nan"), 0, 0.0, 0.0, float("nan"),
                       seconds * SPEED, None, None, 0, scale, [reason], ran=False)


def burst_media(calls: int, long_calls: int, long_minutes: float, cache: Path) -> list[tuple[Path, float]]:
    """The burst's recordings (long ones first), each its own variant; made once, then read from the cache."""
    wanted = [(long_minutes * 60, figures.variant("burst-long", i)) for i in range(long_calls)]
    wanted += [(60.0, figures.variant("burst", i)) for i in range(calls - long_calls)]
    made = []
    for n, (seconds, name) in enumerate(wanted, start=1):
        made.append((media.conversation(seconds, cache, name).path, seconds))
        if n % 10 == 0:
            print(f"    … burst media {n}/{len(wanted)}", flush=True)
    return made


def run_burst(pipeline, calls: int, long_calls: int, long_minutes: float, cache: Path, scale: float, compositors: int) -> BurstFigures:
    """``calls`` calls within a minute: ``long_calls`` of ``long_minutes`` first, then 1-minute ones."""
    from shared.models import Call

    recordings = burst_media(calls, long_calls, long_minutes, cache)
    pipeline.fal.reset()
    pipeline.fal.simulate(_simulation(scale))
    sent = [(_send(pipeline, path.read_bytes(), seconds), seconds) for path, seconds in recordings]
    clock = figures.Clock(time.monotonic(), time.time())
    started = time.monotonic()
    offsets = figures.post_offsets(len(sent))
    posted: dict[str, float] = {}

    def post(item):
        index, (s, _) = item
        time.sleep(max(0.0, started + offsets[index] - time.monotonic()))  # on schedule, however the pool hands out threads
        posted[s.call_id] = time.monotonic()
        return pipeline.post_webhook(s.form)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, enumerate(sent)))
    ids = [s.call_id for s, _ in sent]
    ended = _wait(pipeline, ids, started, max(1800.0, figures.row_timeout(long_minutes * 60, SPEED, scale) * 2), f"burst of {calls}")
    bill = pipeline.fal.bill()
    rows = {c.id: c for c in Call.select().where(Call.id.in_(ids))}
    statuses: dict[str, int] = {}
    for row in rows.values():
        statuses[row.video_status] = statuses.get(row.video_status, 0) + 1
    problems = [f"webhook answered {a.status_code}" for a in answers if a.status_code != 202]
    problems += [f"{i}: did not end ({pipeline.describe(i)[:300]})" for i in ids if i not in ended]
    problems += [f"{i}: lost" for i in ids if i not in rows]
    measured = {i: measure(pipeline, i, clock) for i in ended}
    ends = {i: (m.end if m.end is not None else ended[i]) for i, m in measured.items()}
    short = [(s.call_id, ends[s.call_id] - posted[s.call_id]) for s, secs in sent if secs == 60.0 and s.call_id in ends]
    worst_id, worst = max(short, key=lambda x: x[1]) if short else ("", float("nan"))
    return BurstFigures(
        calls, long_calls, long_minutes, compositors, statuses, max(ends.values(), default=time.monotonic()) - started,
        bill["rate_limited"], bill["submitted"] + bill["rate_limited"], worst,
        figures.bound(measured[worst_id].computes, CONCURRENCY) if worst_id else float("nan"), scale, problems,
    )


def _simulation(scale: float):
    from tests.support.fake_fal import Simulation

    return Simulation(queue_seconds=2.0, speed=SPEED, concurrency=CONCURRENCY, burst=20, submits_per_second=5.0, time_scale=scale)


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _row(f: CallFigures) -> str:
    if not f.ran:
        dashes = " — |" * 8
        return f"| {f.label} | {f.minutes:g} min | — | {f.status} | — | — | {f.bound:.0f}¹ | {f.bound / f.scale:.0f} |{dashes}"
    goal = figures.video_goal(f.bound, f.scale)
    late = f.last_result_to_video
    generation = "—" if f.generation is None else f"{f.generation:.1f}"
    proper = " ²" if f.label == "plan" and figures.plan_proper_cancelled(f.minutes * 60, SPEED) else ""
    return (
        f"| {f.label} | {f.minutes:g} min | {f.compositors} | {f.status}{proper} | {f.seconds:.0f} | "
        f"{goal:.0f} {_mark(f.seconds <= goal)} | "
        f"{f.bound:.0f} | {f.bound / f.scale:.1f} | {generation} | {f.jobs} | {f.rate_limited} | "
        f"{f.billed_seconds:.0f} | {f.dollars:.2f} | {f.speech_seconds:.0f} | "
        f"{1.1 * f.speech_seconds:.0f} {_mark(f.billed_seconds <= 1.1 * f.speech_seconds)} | "
        f"{'—' if late is None else f'{late:.1f} {_mark(late <= 20)}'} |"
    )


def _burst_lines(burst: BurstFigures) -> list[str]:
    share = burst.rate_limited / max(1, burst.submits)
    goal = figures.burst_goal(burst.short_bound, burst.scale)
    return [
        "",
        f"**Burst** (ours, {burst.compositors} compositor process(es)): {burst.calls} calls posted within a minute, "
        f"{burst.long_calls} of them {burst.long_minutes:g}-minute calls sent first, the others 1-minute calls: "
        f"{burst.statuses}; the last video {burst.seconds:.0f} s wall after the first post; "
        f"429s {burst.rate_limited} of {burst.submits} submits "
        f"({share:.1%}, goal ≤ 1 % {_mark(share <= 0.01)}); the slowest 1-minute call took {burst.short_worst:.0f} s wall, "
        f"goal 2 × its own B ({burst.short_bound:.0f} s sim) ÷ {burst.scale:g} + {figures.PIPELINE_ALLOWANCE:.0f} s = {goal:.0f} s wall "
        f"{_mark(burst.short_worst <= goal)}.",
        *[f"- PROBLEM: {p}" for p in burst.problems[:10]],
    ]


TABLE_HEADER = (
    "| way | call | compositors | status | webhook → video (wall s) | goal ≤ 1.2 B ÷ scale + 30 (wall s) | "
    "B (sim s) | B ÷ scale (wall s) | "
    "first submit → last fal result (wall s) | jobs | 429s | billed s | $ | speech s | goal billed ≤ 1.1 × speech | "
    "last fal result → video (wall s, goal ≤ 20) |"
)


def _key(f: CallFigures) -> tuple[str, float, str]:
    return f.label, float(f.minutes), str(f.compositors) if f.ran else "—"


def markdown(rows: list[CallFigures], burst: BurstFigures | None, scale: float, command: str, *, partial: bool = False,
             earlier: str | None = None) -> str:
    """The section; ``earlier``: the section as it was, whose rows this run did not measure are kept (marked †)."""
    kept, kept_burst = figures.kept_rows(earlier, TABLE_HEADER, scale, {_key(f) for f in rows})
    kept_burst = kept_burst if burst is None else []
    lines = [
        figures.scale_marker(scale),
        "## Time to video and money with fal.ai (simulated)",
        "",
        f"`{command}` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC). The real services (gunicorn, one Dramatiq process per service,",
        f"RabbitMQ, PostgreSQL, moto S3) against the fal simulator at speed {SPEED:g} and concurrency {CONCURRENCY},",
        f"model {MODEL} at its list price;",
        "every call has audio of its own (no call reuses another's videos). Goals from issue #26 beside each figure.",
        "",
        f"**Clocks: fal's runs {scale:g}× faster than the wall clock.** _sim s_ are fal's clock (what a real fal would take), _wall s_ the",
        f"benchmark's. B = max(the longest job's compute, all jobs' compute ÷ {CONCURRENCY}), sim s.",
        "The goal 1.2 × B + 30 s is compared in wall s: B ÷ scale, plus 30 s for the pipeline,",
        "whose own work (download, split, compose) runs at real speed. "
        + ("" if scale == 1 else f"Compose has {scale:g}× less generation to overlap with than against a real fal, so webhook → video "
           "under-states what rendering during generation gains (pessimistic for ours); `--scale 1` is real pacing. "),
        "_Last fal result_ is the simulator's completion of the call's last job. The plan: whole sides (cut at the model's 300 s limit),",
        "no cap, a fixed 10-minute timeout (sim), one compose pass.",
        "",
        TABLE_HEADER,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *sorted([_row(f) for f in rows] + kept, key=figures.sort_key),
    ]
    notes = []
    if kept or kept_burst:
        notes.append(f"{figures.MARK} measured by an earlier run at that time (UTC), kept because this one did not measure it.")
    table = "\n".join(kept + [_row(f) for f in rows])
    if "¹" in table:
        notes.append("¹ not run: the plan's one job per side would compute this long, "
                     f"past its fixed {figures.PLAN_TIMEOUT:.0f} s timeout: cancelled, no video.")
    if "²" in table:
        notes.append(f"² the plan proper (one job per whole side) computes {SPEED:g} × the call's length, past its fixed "
                     f"{figures.PLAN_TIMEOUT:.0f} s timeout: cancelled, no video. "
                     "The row is the kinder emulation, cut at the model's limit.")
    if notes:
        lines += ["", *notes]
    if burst is not None:
        lines += _burst_lines(burst)
    elif kept_burst:
        lines += ["", *kept_burst]
    if partial:
        lines += ["", "_Partial: the run was still going when this was written._"]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1- and 5-minute calls, 1 compositor, a burst of 12 (one 5-minute call)")
    parser.add_argument("--long", action="store_true", help="only the 10- and 30-minute calls, no burst (--minutes 10,30 --burst 0)")
    parser.add_argument("--short", action="store_true",
                        help="only the 1- and 5-minute calls and the burst (--minutes 1,5): with --long, a full run in two parts")
    parser.add_argument("--minutes", default="1,5,10,30", help="call lengths, comma list")
    parser.add_argument("--scale", type=float, default=20.0, help="fal's clock against the wall clock (default 20; 1: real fal pacing)")
    parser.add_argument("--compositors", default="1,2", help="compositor processes to measure ours with (comma list)")
    parser.add_argument("--burst", type=int, default=50, help="calls in the burst (0: none)")
    parser.add_argument("--burst-long", type=int, default=None,
                        help="long calls sent first in the burst (default: 1 per 25; 1 from 10 calls; none below)")
    parser.add_argument("--burst-long-minutes", type=float, default=5.0,
                        help="their length (default 5: two waves of the cap's jobs each, enough to hold up calls behind them)")
    parser.add_argument("--plan-max-minutes", type=float, default=5.0,
                        help="longer plan rows are not run: the fixed timeout cancels the plan proper's every side over 5 minutes")
    parser.add_argument("--skip-plan", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--cache", type=Path, default=ROOT / ".callreel" / "bench-cache", help="the recordings, kept between runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.burst, args.compositors = "1,5", 12, "1"
    if args.long:
        args.minutes, args.burst = "10,30", 0
    if args.short:
        args.minutes = "1,5"
    args.burst_long = figures.burst_long_calls(args.burst) if args.burst_long is None else args.burst_long
    return args


def _earlier(path: Path) -> str | None:
    """The section as the last run left it (its rows are kept where this run does not measure them)."""
    from bench.report import blocks

    document = path.read_text() if path.exists() else ""
    return next((b for b in blocks(document) if b.startswith("<!-- fal-latency:")), None)


def _command(argv: list[str] | None) -> str:
    given = sys.argv[1:] if argv is None else argv
    return " ".join(["bench/fal_latency.py", *given])


def _make_recordings(args: argparse.Namespace, minutes: list[float], compositors: list[int]) -> None:
    """Every row's recording, before the services start: the first run makes them (30 minutes: ~10 s), later runs read them."""
    print(f"making the recordings ({args.cache}, kept for the next run)…", flush=True)
    for length in minutes:
        for count in compositors:
            media.conversation(length * 60, args.cache, row_variant("ours", length, count))
        if not args.skip_plan and length <= args.plan_max_minutes:
            media.conversation(length * 60, args.cache, row_variant("plan", length, 1))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    import logging
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the services it started
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: one line per request otherwise
    minutes = [float(m) for m in args.minutes.split(",") if m.strip()]
    compositors = [int(c) for c in args.compositors.split(",") if c.strip()]
    args.cache.mkdir(parents=True, exist_ok=True)

    from bench.report import write_block
    from tests.e2e.harness import Pipeline
    from tests.support import services

    _make_recordings(args, minutes, compositors)
    common = {
        "FAL_POLL_INTERVAL": str(figures.poll_interval(args.scale)), "STAGE_DEADLINE": "7200", "RECORDING_MAX_BYTES": str(60_000_000),
        "RECORDING_MAX_SECONDS": "3700", "MAX_CALL_SECONDS": "3700", "PANEL_WIDTH": "320", "PANEL_HEIGHT": "240", "VIDEO_FPS": "15",
        "FAL_MAX_RETRIES": "1", "COMPOSE_TIMEOUT": "3600", "TRANSCRIPT_MAX_BYTES": str(2_000_000),
    }
    ways = {
        "ours": {"GENERATION_MODE": "speech", "FAL_MAX_CONCURRENT_JOBS": str(CONCURRENCY), "FAL_JOB_TIMEOUT": "3600"},
        # The plan's fixed 10-minute timeout, on fal's scaled clock (a floor in our code: see the module's text).
        # SEGMENT_MAX_SECONDS=0: whole sides, cut only at the model's own limit (not ours, 60 s, meant for latency).
        # COMPOSE_CHUNK_SECONDS=0: the plan composes the call in one pass once both sides are back.
        "plan": {
            "GENERATION_MODE": "full", "SEGMENT_MAX_SECONDS": "0", "FAL_MAX_CONCURRENT_JOBS": "0", "COMPOSE_CHUNK_SECONDS": "0",
            "FAL_JOB_TIMEOUT": str(max(1, round(figures.PLAN_TIMEOUT / args.scale))),
        },
    }
    rows: list[CallFigures] = []
    burst = None
    command = _command(argv)

    earlier = _earlier(args.output)

    def write(partial: bool) -> str:
        text = markdown(rows, burst, args.scale, command, partial=partial, earlier=earlier)
        write_block(args.output, "fal-latency", text)
        return text

    with services.private_stack("callreel-fal-bench-") as stack:
        for way, env in ways.items():
            if way == "plan" and args.skip_plan:
                continue
            lengths = minutes
            if way == "plan":  # rows its fixed timeout cancels are written, not run; no pipeline for nothing
                rows.extend(skipped_plan(m, 1, args.scale) for m in minutes if m > args.plan_max_minutes)
                lengths = [m for m in minutes if m <= args.plan_max_minutes]
                if not lengths:
                    continue
            where = {"pg_url": stack.pg_url, "broker_url": stack.broker_url, "s3_server": stack.s3}
            with Pipeline(stack.root / way, **where, threads=4, **common, **env) as pipeline:
                pipeline.fal.video_maker = _video_maker(stack.root)
                pipeline.memory.stop()  # its /proc walk ten times a second is CPU the compose needs; no figure here uses it
                for count in compositors if way == "ours" else [1]:
                    if pipeline.workers["compositor"].processes != count:
                        pipeline.restart("compositor", processes=count)
                    print(f"{way}, {count} compositor process(es):", flush=True)
                    for length in lengths:
                        rows.append(run_call(pipeline, way, length, args.cache, args.scale, count))
                        write(partial=True)
                if way == "ours" and args.burst:
                    count = pipeline.workers["compositor"].processes
                    print(f"burst of {args.burst} calls ({args.burst_long} × {args.burst_long_minutes:g} min first), "
                          f"{count} compositor(s):", flush=True)
                    burst = run_burst(pipeline, args.burst, args.burst_long, args.burst_long_minutes, args.cache, args.scale, count)
                    print(f"  {burst}", flush=True)
        text = write(partial=False)
        print(text)
        return 0


if __name__ == "__main__":
    sys.exit(main())
