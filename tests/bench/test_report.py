"""docs/benchmarks.md is rewritten by every run, but what people wrote at its end survives."""

from __future__ import annotations

import re
from pathlib import Path

from bench.report import HAND_WRITTEN, Report, hand_written, write

ROOT = Path(__file__).resolve().parents[2]
POINTER = re.compile(r'docs/benchmarks\.md, section "([^"]+)"')
TAIL = f"{HAND_WRITTEN}\n\n## Reading the figures (hand-written)\n\n- the 720p ratio is capped by decoding\n"


def test_a_rewrite_keeps_the_hand_written_tail(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text(f"# callreel benchmarks\n\nold figures: 3.56×\n\n{TAIL}")
    write(path, Report(header=["new run"]).markdown())
    text = path.read_text()
    assert "old figures" not in text  # the generated part is replaced…
    assert text.startswith("# callreel benchmarks\n\nnew run\n")
    assert text.endswith("\n\n" + TAIL)  # …and the tail follows it, as it was


def test_the_tail_survives_every_rewrite_unchanged(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text(f"generated\n\n{TAIL}")
    for run in ("first", "second", "partial\n_Partial: the run was still going when this was written._\n"):
        write(path, run)
    assert path.read_text() == f"partial\n_Partial: the run was still going when this was written._\n\n{TAIL}"


def test_a_file_without_the_marker_or_none_at_all_is_simply_written(tmp_path):
    path = tmp_path / "docs" / "benchmarks.md"
    write(path, "first\n")
    assert path.read_text() == "first\n"
    path.write_text("first\n\n## Reading the figures\n\nno marker above me\n")
    write(path, "second\n")
    assert path.read_text() == "second\n"
    assert not list(path.parent.glob("*.tmp"))


def test_the_marker_is_a_whole_line():
    assert hand_written(f"text quoting {HAND_WRITTEN} inline\n") == ""


def test_the_documents_hand_written_sections_are_under_the_marker():
    tail = hand_written((ROOT / "docs" / "benchmarks.md").read_text())
    assert "## Reading the figures (hand-written)" in tail
    assert "## Measurements behind the code (hand-written)" in tail


def test_every_pointer_from_the_code_names_a_section_of_the_document():
    """The code gives reasons in words and points to docs/benchmarks.md for the figures: the sections must exist."""
    headings = {line.lstrip("#").strip() for line in (ROOT / "docs" / "benchmarks.md").read_text().splitlines() if line.startswith("#")}
    pointers = []
    for folder in ("bench", "callreel", "services", "shared"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            flat = re.sub(r"\s*\n\s*#?\s*", " ", path.read_text())  # comments and docstrings as one line
            pointers += [(path.relative_to(ROOT), name) for name in POINTER.findall(flat)]
    assert len(pointers) >= 10  # the pattern still finds them
    missing = [f"{path}: {name}" for path, name in pointers if name not in headings]
    assert not missing, "pointers to sections docs/benchmarks.md does not have:\n" + "\n".join(missing)
