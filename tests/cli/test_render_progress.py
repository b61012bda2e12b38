"""The progress display of ``callreel render`` on a terminal, fed a call's row as it changes (no pipeline)."""

import io
import re
from datetime import timedelta
from types import SimpleNamespace

from callreel.render import Progress
from shared.models import STAGES, Stage, VideoStatus, utcnow


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _row(stage, status=VideoStatus.PENDING, **times):
    """A call row: ``audio=(start, end)`` in seconds from now-10 s, None for not yet."""
    base = utcnow() - timedelta(seconds=10)
    row = {"source": "local", "stage": stage, "video_status": status}
    for name in STAGES:
        start, end = times.get(name, (None, None))
        row[f"{name}_started_at"] = None if start is None else base + timedelta(seconds=start)
        row[f"{name}_finished_at"] = None if end is None else base + timedelta(seconds=end)
    return SimpleNamespace(**row)


def _screen(raw: str) -> list[str]:
    return [line.split("\r")[-1].replace("\033[K", "") for line in raw.split("\n") if line.split("\r")[-1].replace("\033[K", "").strip()]


def test_a_finished_stage_gets_its_final_line_before_the_next_starts():
    out = Terminal()
    progress = Progress(out, quiet=False, percent=SimpleNamespace(fraction=0.42))
    progress.show(_row(Stage.AUDIO, ingest=(0, 0), audio=(0, None)))
    progress.show(_row(Stage.AUDIO, ingest=(0, 0), audio=(0, 1.25)))  # done; generation not begun yet
    progress.show(_row(Stage.GENERATION, ingest=(0, 0), audio=(0, 1.25), generation=(1.3, 2.0)))
    progress.show(_row(Stage.COMPOSITOR, ingest=(0, 0), audio=(0, 1.25), generation=(1.3, 2.0), compositor=(2.0, None)))
    screen = _screen(out.getvalue())
    assert [re.sub(r"\s+", " ", line.strip()) for line in screen[:2]] == ["✓ audio 1.2 s", "✓ generation 0.7 s"], screen
    assert re.fullmatch(r"  [|/\\-] compositor +42% +\d+\.\d s", screen[2]), screen  # still redrawn in place
    assert "ingest" not in out.getvalue()  # a local file has no download


def test_the_stage_a_call_ended_in_is_marked_with_the_status():
    out = Terminal()
    progress = Progress(out, quiet=False)
    ended = _row(Stage.DONE, VideoStatus.FAILED, ingest=(0, 0), audio=(0, 1.0), generation=(1.0, 1.5), compositor=(1.5, 3.0))
    progress.show(ended)
    progress.close()
    screen = [re.sub(r"\s+", " ", line.strip()) for line in _screen(out.getvalue())]
    assert screen == ["✓ audio 1.0 s", "✓ generation 0.5 s", "✗ compositor 1.5 s failed"]


def test_not_on_a_terminal_plain_lines_per_stage_change():
    out = io.StringIO()
    progress = Progress(out, quiet=False)
    progress.show(_row(Stage.AUDIO, ingest=(0, 0), audio=(0, None)))
    progress.show(_row(Stage.GENERATION, ingest=(0, 0), audio=(0, 1.0), generation=(1.0, None)))
    assert "\r" not in out.getvalue() and "callreel: audio done in 1.0s" in out.getvalue().splitlines()
