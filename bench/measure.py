"""Measuring a process: wall time, CPU time and peak RSS, from the kernel's own accounting.

Two ways, for the two kinds of thing measured:

- :func:`run_command` runs one program (an FFmpeg command) and reaps it with
  ``os.wait4``, whose ``rusage`` is that process's CPU time and peak RSS;
- :func:`run_stage` starts a fresh Python process (``python -m bench.stage``)
  that does one stage's real work. That process reports its own figures
  (``RUSAGE_SELF``) and those of the FFmpeg/ffprobe children it reaped
  (``RUSAGE_CHILDREN``: CPU summed, peak RSS of the largest child), so the
  worker's memory and FFmpeg's are told apart and each stage starts from a
  clean process.

The sum of the two peaks is an upper bound of the stage's memory at any one
instant (the peaks need not coincide); it is what the 300 MB target is checked
against.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "Usage", "StageResult", "MeasureError", "run_command", "run_stage", "write_report",
    "median_of", "median_stage", "self_usage", "loadavg", "MB",
]

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]


def loadavg() -> float:
    """The one-minute load average (the machine is shared: every figure says how busy it was)."""
    return os.getloadavg()[0]


@dataclass
class Usage:
    wall: float  # seconds
    cpu: float  # user + system seconds
    rss: float  # peak resident set, bytes


@dataclass
class StageResult:
    """One stage run in its own process."""

    wall: float
    worker: Usage  # the Python worker process itself
    ffmpeg: Usage  # its FFmpeg/ffprobe children (cpu summed, rss of the largest)
    output_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    load: float = 0.0

    @property
    def cpu(self) -> float:
        return self.worker.cpu + self.ffmpeg.cpu

    @property
    def peak_rss(self) -> float:
        return self.worker.rss + self.ffmpeg.rss


class MeasureError(RuntimeError):
    pass


def run_command(args: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None) -> Usage:
    """Run ``args`` to completion; its wall time, CPU time and peak RSS (raises on failure)."""
    started = time.monotonic()
    with open(log or os.devnull, "wb") as err:
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        detail = log.read_text(errors="replace")[-1500:] if log else ""
        raise MeasureError(f"{Path(args[0]).name} exited with {proc.returncode}: {detail}")
    return Usage(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss=usage.ru_maxrss * 1024)


def self_usage() -> tuple[Usage, Usage]:
    """This process's own CPU and peak RSS, and that of the children it has reaped (wall left 0)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        Usage(0.0, me.ru_utime + me.ru_stime, me.ru_maxrss * 1024),
        Usage(0.0, kids.ru_utime + kids.ru_stime, kids.ru_maxrss * 1024),
    )


def run_stage(stage: str, params: dict[str, Any], env: dict[str, str], workdir: Path) -> StageResult:
    """Run ``bench.stage`` for ``stage`` in a fresh interpreter; its report."""
    report = workdir / f"stage-{stage}-{time.monotonic_ns()}.json"
    log = report.with_suffix(".log")
    load = loadavg()
    args = [sys.executable, "-m", "bench.stage", stage, json.dumps(params), str(report)]
    with open(log, "wb") as out:
        done = subprocess.run(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not report.exists():
        raise MeasureError(f"stage {stage} failed (exit {done.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    data = json.loads(report.read_text())
    report.unlink()
    log.unlink()
    return StageResult(
        wall=data["wall"],
        worker=Usage(**data["worker"]),
        ffmpeg=Usage(**data["ffmpeg"]),
        output_bytes=data.get("output_bytes", 0),
        extra=data.get("extra", {}),
        load=load,
    )


def write_report(path: Path, wall: float, worker: Usage, ffmpeg: Usage, output_bytes: int, extra: dict[str, Any]) -> None:
    """What a stage process hands back to :func:`run_stage`."""
    path.write_text(
        json.dumps({"wall": wall, "worker": asdict(worker), "ffmpeg": asdict(ffmpeg), "output_bytes": output_bytes, "extra": extra})
    )


def median_of(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def median_stage(results: Sequence[StageResult]) -> StageResult:
    """Per-figure medians of repeated runs of one stage (each column's own median)."""
    def usage(pick) -> Usage:
        return Usage(
            wall=median_of(pick(r).wall for r in results),
            cpu=median_of(pick(r).cpu for r in results),
            rss=median_of(pick(r).rss for r in results),
        )

    extra: dict[str, Any] = {}
    for key in results[0].extra:
        values = [r.extra[key] for r in results if isinstance(r.extra.get(key), (int, float))]
        extra[key] = median_of(values) if values else results[-1].extra[key]
    return StageResult(
        wall=median_of(r.wall for r in results),
        worker=usage(lambda r: r.worker),
        ffmpeg=usage(lambda r: r.ffmpeg),
        output_bytes=int(median_of(r.output_bytes for r in results)),
        extra=extra,
        load=median_of(r.load for r in results),
    )

