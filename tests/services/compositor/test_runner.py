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
