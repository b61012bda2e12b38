"""Measuring a process: wall time, CPU time and peak RSS.

Two ways, for the two kinds of thing measured:

- :func:`run_command` runs one program (an FFmpeg command), reaps it with
  ``os.wait4`` for its CPU time and watches its peak RSS;
- :func:`run_stage` starts a fresh Python process (``python -m bench.stage``)
  that does one stage's real work. That process reports its own figures and
  those of the FFmpeg/ffprobe children it started (CPU from
  ``RUSAGE_CHILDREN``, peak RSS watched), so the worker's memory and FFmpeg's
  are told apart and each stage starts from a clean process.

Peak RSS is the kernel's high-water mark of the process's own memory
(``VmHWM`` in /proc/PID/status), never ``ru_maxrss``: a child started with
vfork (as Python's subprocess does) inherits its parent's high-water mark
into ``ru_maxrss`` when it execs, so an FFmpeg started by a 300 MB process
would "use" 300 MB. ``VmHWM`` belongs to the memory map, which exec replaces.
A child's ``VmHWM`` is sampled while it runs (every 20 ms); a child shorter
than that (an ffprobe) may be missed, which only ever hides small ones.

The sum of the worker's and FFmpeg's peaks is an upper bound of the stage's
memory at any one instant (the peaks need not coincide); it is what the
300 MB target is checked against.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "Usage", "StageResult", "MeasureError", "ChildPeaks", "high_water", "run_command", "run_stage", "write_report",
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


SAMPLE_EVERY = 0.02


def high_water(pid: int | str = "self") -> int:
    """``VmHWM`` of a process in bytes (0 when it is gone or not yet exec'd into a new map)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


# The kernel lists each thread's children here (CONFIG_PROC_CHILDREN, on in
# Debian's and Ubuntu's kernels); elsewhere descendants are found by a scan.
HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children_of(pid: int) -> list[int]:
    """``pid``'s children, from ``/proc/PID/task/*/children`` (none if it or a thread is gone meanwhile)."""
    found: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task.name}/children") as children:
                    found += [int(child) for child in children.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _parents() -> dict[int, int]:
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    # pid (comm) state ppid …; comm may hold spaces or parentheses
                    found[int(entry.name)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found


class ChildPeaks:
    """The largest ``VmHWM`` seen among a process's descendants, sampled in a thread."""

    def __init__(self, root: int | None = None, *, only: int | None = None) -> None:
        self.root = root if root is not None else os.getpid()
        self.only = only  # watch this one pid instead of scanning for descendants
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _descendants(self) -> list[int]:
        if not HAS_CHILDREN_FILES:
            return self._descendants_by_scan()
        # Far cheaper than a scan of every process, which at 50 samples a
        # second took a noticeable share of a core from the worker being
        # measured (docs/benchmarks.md, section "The benchmark's own costs").
        found, frontier = [], [self.root]
        while frontier:
            frontier = [child for pid in frontier for child in _children_of(pid)]
            found += frontier
        return found

    def _descendants_by_scan(self) -> list[int]:
        parents = _parents()
        found, frontier = [], {self.root}
        while frontier:
            children = {pid for pid, parent in parents.items() if parent in frontier}
            found += children
            frontier = children
        return found

    def _watch(self) -> None:
        while not self._stop.is_set():
            pids = [self.only] if self.only is not None else self._descendants()
            for pid in pids:
                self.peak = max(self.peak, high_water(pid))
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> "ChildPeaks":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_command(args: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None) -> Usage:
    """Run ``args`` to completion; its wall time, CPU time and peak RSS (raises on failure)."""
    started = time.monotonic()
    with open(log or os.devnull, "wb") as err:
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        with ChildPeaks(only=proc.pid) as peaks:
            _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        detail = log.read_text(errors="replace")[-1500:] if log else ""
        raise MeasureError(f"{Path(args[0]).name} exited with {proc.returncode}: {detail}")
    return Usage(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss=peaks.peak)


def self_usage() -> tuple[Usage, Usage]:
    """This process's CPU time and peak RSS, and the CPU time of the children it has reaped (wall and child RSS left 0)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return Usage(0.0, me.ru_utime + me.ru_stime, high_water()), Usage(0.0, kids.ru_utime + kids.ru_stime, 0)


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

