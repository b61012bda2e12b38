"""The compositor's FFmpeg runs: progress in its log, as a percentage of the call."""

from __future__ import annotations

import logging

from services.compositor import runner
from services.compositor.runner import run_ffmpeg


def test_a_run_logs_its_progress_as_a_percentage(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(runner, "PROGRESS_EVERY", 0.2)
    out = tmp_path / "out.mp4"
    caplog.set_level(logging.INFO, logger="callreel.compositor.ffmpeg")
    run_ffmpeg(  # -re: three seconds of encoding, so several progress blocks come and get logged
        ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=3", "-c:v", "libx264", "-preset", "ultrafast", "-y", str(out)],
        timeout=60, what="test encode", total_seconds=3.0, log_extra={"call_id": "CA" + "0" * 32},
    )
    assert out.stat().st_size > 0
    lines = [r for r in caplog.records if r.name == "callreel.compositor.ffmpeg"]
    assert any("test encode" in r.getMessage() and "%" in r.getMessage() for r in lines)
    assert lines[-1].getMessage().startswith("test encode finished in")
    assert all(getattr(r, "call_id", None) == "CA" + "0" * 32 for r in lines)


def test_a_watcher_in_the_process_gets_the_fraction_done_every_tick(tmp_path, monkeypatch):
    # What `callreel render` shows as the compose percentage: DEBUG records, only when someone lowers the level.
    monkeypatch.setattr(runner, "PROGRESS_TICK", 0.2)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append  # type: ignore[method-assign]
    runner.progress_log.addHandler(handler)
    runner.progress_log.setLevel(logging.DEBUG)  # setLevel, not .level: it clears logging's cache of levels
    try:
        run_ffmpeg(
            ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=3", "-c:v", "libx264", "-preset", "ultrafast", "-y", str(tmp_path / "out.mp4")],
            timeout=60, what="compose", total_seconds=3.0, log_extra={"call_id": "CA" + "1" * 32},
        )
    finally:
        runner.progress_log.removeHandler(handler)
        runner.progress_log.setLevel(logging.NOTSET)
    fractions = [r.progress for r in seen]
    # Order and causality, not seconds (a loaded machine delays FFmpeg's blocks and this thread alike): never
    # backwards, within 0..1, and moving while the watcher watched (-re makes the encode last 3 s at least).
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions), fractions
    assert len(set(fractions)) >= 2 and fractions[-1] > 0, fractions
    assert {(r.what, r.call_id) for r in seen} == {("compose", "CA" + "1" * 32)}


def test_without_a_watcher_no_progress_record_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_TICK", 0.1)
    made = []
    monkeypatch.setattr(runner.progress_log, "handle", made.append)
    run_ffmpeg(
        ["ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-y", str(tmp_path / "out.mp4")],
        timeout=60, what="compose", total_seconds=1.0,
    )
    assert made == []
