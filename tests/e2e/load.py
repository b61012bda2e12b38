"""Load: N calls arriving together, through the whole pipeline of real processes.

    .venv/bin/python tests/e2e/load.py --calls 20          # needs PostgreSQL and RabbitMQ on 127.0.0.1

Every call must end ``completed``, none lost, none duplicated. Prints the
throughput (calls per minute, from the first webhook to the last video in S3),
each call's time from webhook to video, and the peak memory (VmHWM) of each
service's processes: the Dramatiq main process, its worker process and the
FFmpeg children it ran. Run directly, it makes its own database and vhost and
removes them after; the e2e test runs the same ``run_load`` on the shared
pipeline with 10 calls.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared import keys  # noqa: E402
from shared.models import Call, VideoStatus  # noqa: E402
from tests.e2e.harness import Pipeline  # noqa: E402
from tests.support.s3_proxy import writes_of  # noqa: E402

__all__ = ["LoadResult", "run_load", "main"]


@dataclass
class LoadResult:
    calls: int
    seconds: float  # first webhook to the last call ended
    statuses: dict[str, int]
    latencies: list[float]  # webhook to video, per call
    memory: list[tuple[str, str, float, int]]  # (service, role, peak MiB, processes)
    problems: list[str]

    @property
    def calls_per_minute(self) -> float:
        return self.calls / self.seconds * 60

    def report(self) -> str:
        lat = sorted(self.latencies)
        lines = [
            f"load: {self.calls} calls of {RECORDING_SECONDS:g} s arriving together",
            f"  all ended in {self.seconds:.1f} s: {self.calls_per_minute:.1f} calls/minute; {self.statuses}",
            f"  webhook to video: median {statistics.median(lat):.1f} s, slowest {lat[-1]:.1f} s",
            "  peak memory (VmHWM) per process:",
        ]
        lines += [f"    {service:<11} {role:<8} {mib:7.1f} MiB  ({count} process(es))" for service, role, mib, count in self.memory]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


RECORDING_SECONDS = 4.0


def run_load(pipeline: Pipeline, calls: int, *, timeout: float = 900) -> LoadResult:
    """Send ``calls`` signed webhooks at once and wait for every call to end; check nothing was lost or doubled."""
    bodies = [pipeline.recording(RECORDING_SECONDS) for _ in range(calls)]  # made before the clock starts
    sent = [pipeline.send_call(body, post=False) for body in bodies]
    pipeline.memory.reset()
    started = time.monotonic()
    with ThreadPoolExecutor(min(calls, 32)) as pool:
        answers = list(pool.map(lambda s: pipeline.post_webhook(s.form), sent))
    ids = [s.call_id for s in sent]
    ended_at: dict[str, float] = {}
    deadline = started + timeout
    while len(ended_at) < calls and time.monotonic() < deadline:
        for call in Call.select(Call.id, Call.video_status).where(Call.id.in_([i for i in ids if i not in ended_at])):
            if call.video_status in VideoStatus.TERMINAL and (call.video_status == VideoStatus.FAILED or pipeline.exists(keys.video_key(call.id))):
                ended_at[call.id] = time.monotonic()
        time.sleep(0.2)
    seconds = max(ended_at.values(), default=time.monotonic()) - started
    pipeline.memory.sample()

    problems = [f"webhook answered {a.status_code}: {a.text[:200]}" for a in answers if a.status_code != 202]
    rows = {c.id: c for c in Call.select().where(Call.id.in_(ids))}
    statuses: dict[str, int] = {}
    for s in sent:
        call = rows.get(s.call_id)
        if call is None:
            problems.append(f"{s.call_id}: lost (no row)")
            continue
        statuses[call.video_status] = statuses.get(call.video_status, 0) + 1
        if s.call_id not in ended_at:
            problems.append(f"{s.call_id}: did not end ({pipeline.describe(s.call_id)})")
        elif call.video_status != VideoStatus.COMPLETED:
            problems.append(f"{s.call_id}: {call.video_status}: {call.video_error_message}")
        if Call.select().where(Call.recording_sid == s.recording.sid).count() != 1:
            problems.append(f"{s.call_id}: more than one row for its recording")
        if len(pipeline.twilio.media_gets(s.recording)) != 1:
            problems.append(f"{s.call_id}: downloaded {len(pipeline.twilio.media_gets(s.recording))} times")
        for side in ("caller", "callee"):
            if len(pipeline.fal_submissions(s.call_id, side)) != 1:
                problems.append(f"{s.call_id}: {side} sent to fal {len(pipeline.fal_submissions(s.call_id, side))} times")
        composed = writes_of(pipeline.proxy.log(), keys.video_key(s.call_id))
        if composed != 1 or call.compositor_attempts != 1:
            problems.append(f"{s.call_id}: composed {composed} times ({call.compositor_attempts} attempts)")
    return LoadResult(
        calls=calls,
        seconds=seconds,
        statuses=statuses,
        latencies=[ended_at[i] - started for i in ids if i in ended_at],
        memory=pipeline.memory.report(),
        problems=problems,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="calls arriving together (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="Dramatiq threads per worker process (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs of every process)")
    args = parser.parse_args(argv)

    from tests.support import services

    with services.private_stack("callreel-load-", keep=args.keep) as stack:
        with Pipeline(stack.root, pg_url=stack.pg_url, broker_url=stack.broker_url, s3_server=stack.s3, threads=args.threads) as pipeline:
            result = run_load(pipeline, args.calls)
        print(result.report())
        return 1 if result.problems else 0

if __name__ == "__main__":
    sys.exit(main())
