"""``bench/run.py --quick``: the benchmark runs end to end and its tables have the shape docs/benchmarks.md relies on.

Figures are not checked (the machine is shared and its speed is not under
test); that each measurement is present, numeric and plausible is.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import STAGE_COLUMNS

# The quick run (the module fixture, timed with the first test) shares two cores with the other
# pytest-xdist worker under make test: room for a slow machine, not a figure under test.
pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def tables(markdown: str) -> dict[str, list[list[list[str]]]]:
    """Every Markdown table (header row first, then the rows), listed under the heading above it."""
    found: dict[str, list[list[list[str]]]] = {}
    heading, current = "", None
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if not line.startswith("|"):
            current = None
        elif not line.startswith("|---"):
            if current is None:
                current = []
                found.setdefault(heading, []).append(current)
            current.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return found


def number(cell: str) -> float:
    return float(cell.split()[0].rstrip("×"))


def ffmpeg_folder(folder: Path) -> Path:
    """A folder of ffmpeg/ffprobe wrappers around this machine's, as scripts/image-ffmpeg.sh makes around another build."""
    folder.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        (folder / tool).write_text(f'#!/bin/sh\nexec {shutil.which(tool)} "$@"\n')
        (folder / tool).chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    out = work / "benchmarks.md"
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.exists() else None
    main, other = ffmpeg_folder(work / "main-ffmpeg"), ffmpeg_folder(work / "other-ffmpeg")
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--output", str(out), "--ffmpeg", str(main), "--also-ffmpeg", str(other)],
        cwd=ROOT, capture_output=True, text=True, timeout=580,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (docs.read_bytes() if docs.exists() else None) == before, "a quick run must not overwrite docs/benchmarks.md"
    return done.stdout, out.read_text()


def test_the_printed_tables_are_the_written_ones(quick_run):
    printed, written = quick_run
    assert written.strip() and written.strip() == printed.strip()


def test_every_stage_has_time_cpu_memory_and_output(quick_run):
    found = tables(quick_run[1])
    (stages,) = found["0.1-minute call"]
    assert tuple(stages[0]) == STAGE_COLUMNS
    rows = {row[0]: row for row in stages[1:]}
    assert set(rows) == {"download", "split", "compose", "compose (local panels)", "upload"}
    for name, row in rows.items():
        wall, cpu, worker = number(row[1]), number(row[2]), number(row[3])
        assert wall > 0 and cpu > 0, row
        assert 20 < worker < 2000, row  # a Python worker's RSS, in MB
        assert row[6].endswith(("KB", "MB")) and number(row[6]) > 0, row
    for name in ("split", "compose", "compose (local panels)"):  # these run FFmpeg
        assert number(rows[name][4]) > 0, rows[name]
    assert rows["download"][4] == "–" and rows["upload"][4] == "–"  # these do not


def test_compose_is_compared_with_the_plan_on_speed_quality_and_size(quick_run):
    found = tables(quick_run[1])
    compose, _, sweep = found["512x512 sides, 2 s"]  # the middle one: under the --also-ffmpeg build
    header, rows = compose[0], compose[1:]
    assert header[:3] == ["render", "wall s", "CPU s"] and "SSIM" in header and "PSNR dB" in header
    assert rows[0][0].startswith("plan (medium, crf 23)")
    assert any("shipped: audio, labels, highlight" in row[0] for row in rows)
    # A row per other layout, in its frame's size.
    framed = [m[1] for row in rows if (m := re.search(r", ([a-z-]+ \d+×\d+): audio, labels, highlight$", row[0]))]
    assert framed == ["landscape 1280×720", "square 1080×1080", "vertical 1080×1920"]
    # Burned captions: their CPU against the same render without them.
    (captioned,) = [row for row in rows if "shipped + captions (burn): " in row[0]]
    assert re.search(r"captions \(burn\): [+-]\d+\.\d% CPU$", captioned[0]) and number(captioned[2]) > 0, captioned
    ssim = header.index("SSIM")
    for row in rows:
        assert 0.5 < number(row[ssim]) <= 1.0, row
    assert sweep[0] == [*header, "rule"] and len(sweep) == 3  # the quick run's two encoder settings
    assert [row[-1] for row in sweep[1:]].count("**chosen**") <= 1


def test_the_compose_comparison_runs_under_each_ffmpeg_asked_for(quick_run):
    found = tables(quick_run[1])
    assert "The same two commands under FFmpeg" in quick_run[1]
    _, elsewhere, _ = found["512x512 sides, 2 s"]
    assert len(elsewhere) == 3
    assert elsewhere[1][0].startswith("plan (medium, crf 23)") and elsewhere[2][0].endswith(", shipped")
    assert 0.5 < number(elsewhere[2][elsewhere[0].index("SSIM")]) <= 1.0
    rows = [row for row in found["Targets"][0][1:] if row[0].startswith("compose ≥ 2.5× faster")]
    assert len(rows) == 2 and all(", FFmpeg " in row[0] for row in rows)  # the run's build and the other one


def test_split_webhook_download_and_targets_are_reported(quick_run):
    found = tables(quick_run[1])
    (split,) = found["Split: ours against the plan's two passes"]
    assert len(split) == 2 and number(split[1][3]) > 0
    (webhook,) = found["Ingest webhook"]
    assert len(webhook) == 3 and all(row[8] == "0" for row in webhook[1:]), webhook  # every callback accepted
    (download,) = found["Download memory"]
    assert [row[0] for row in download[1:]] == ["1.0 MB", "6.0 MB"]
    targets = {row[0] for row in found["Targets"][0][1:]}
    assert any(t.startswith("compose ≥ 2.5× faster") for t in targets)
    assert any(t.startswith("burned captions ≤ 10 % more CPU") for t in targets)
    assert any(t.startswith("pipeline < 8 s per minute") for t in targets)
    assert "every worker < 300 MB peak RSS incl. FFmpeg" in targets
    assert any(t.startswith("webhook p99 < 50 ms") for t in targets)
    assert any(t.startswith("download peak RSS flat") for t in targets)


def test_compose_memory_is_measured_by_segment_count(quick_run):
    (segments,) = tables(quick_run[1])["Compose memory by segments"]
    assert segments[0] == ["segments per side", "call", "FFmpeg CPU s", "FFmpeg peak RSS MB"]
    counts = [int(row[0]) for row in segments[1:]]
    assert counts == [1, 2] and all(number(row[3]) > 20 for row in segments[1:])


def test_the_pipeline_per_minute_shows_the_render_and_the_machines_speed(quick_run):
    (pipeline,) = tables(quick_run[1])["Whole pipeline without the fal.ai wait"]
    assert pipeline[0][-1] == "of which render, wall s per call minute"
    (row,) = pipeline[1:]
    wall, render = number(row[2]), number(row[4])
    assert 0 < render < wall, row  # the render is part of the stage, never all of the pipeline
    assert "the plan's own 512×512 render took" in quick_run[1]
