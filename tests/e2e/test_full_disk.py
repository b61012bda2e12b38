"""TMP_DIR full (D5): the compositor says so, waits with backoff, and makes the video once there is room.

The compositor's TMP_DIR is a small tmpfs of the test's own (mounting needs
root: skipped otherwise), filled to the last byte by a file the test removes.
"""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path

import pytest

from shared.models import Call, VideoStatus

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

NO_SPACE = "no space left in TMP_DIR"


@pytest.fixture
def small_tmp(tmp_path):
    mount = tmp_path / "small-tmp"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        # Lazily: the compositor started on it runs until the next test's reset.
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """A file taking every free byte of ``folder``'s file system."""
    filler = folder / "filler"
    chunk = b"\0" * (1024 * 1024)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def wait_logged(pipeline, service: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in pipeline.workers[service].log():
        assert time.monotonic() < deadline, f"{service} never logged {text!r}\n{pipeline.logs()}"
        time.sleep(0.2)


def wait_terminal(call_id: str, timeout: float = 120) -> Call:
    deadline = time.monotonic() + timeout
    while (call := Call.get_by_id(call_id)).video_status not in VideoStatus.TERMINAL:
        assert time.monotonic() < deadline, f"the call did not end within {timeout} s"
        time.sleep(0.25)
    return call


def test_a_full_tmp_dir_is_waited_out_then_the_video_is_made(pipeline, small_tmp):
    pipeline.restart("compositor", TMP_DIR=str(small_tmp))
    filler = fill(small_tmp)
    sent = pipeline.send_call()
    wait_logged(pipeline, "compositor", f"{NO_SPACE} ({small_tmp}")
    assert Call.get_by_id(sent.call_id).video_status not in VideoStatus.TERMINAL  # not ended partial: waiting
    filler.unlink()
    call = pipeline.wait_ended_one(sent.call_id, timeout=120)

    assert call.video_status == VideoStatus.COMPLETED, pipeline.describe(sent.call_id)
    assert call.video_error_message is None
    log = pipeline.workers["compositor"].log()
    assert "moov atom not found" not in log and "stitching failed" not in log


def test_a_tmp_dir_that_stays_full_ends_the_call_with_the_disk_as_its_reason(pipeline, small_tmp):
    pipeline.restart("compositor", TMP_DIR=str(small_tmp), STORAGE_OUTAGE_TOLERANCE="8")
    fill(small_tmp)
    sent = pipeline.send_call()
    call = wait_terminal(sent.call_id)  # partial with no final video: wait_ended would wait for one

    # The compositor's give-up keeps the sides fal made (its fallback), and says why there is no video.
    assert call.video_status == VideoStatus.PARTIAL, pipeline.describe(sent.call_id)
    assert call.caller_video_url and call.callee_video_url
    reason = call.video_error_message
    assert reason.startswith(f"compositing failed: {NO_SPACE} ({small_tmp}"), reason
    assert "STORAGE_OUTAGE_TOLERANCE=8" in reason and "moov atom" not in reason
    assert call.compositor_attempts >= 2  # retried (after the compositor's own 15 s backoff) before giving up
