"""Temp folders left by killed workers: removed at worker start, and only when no message can own them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import owners, pipeline
from shared.janitor import clear_stage, remove_stale
from shared.settings import Settings
from tests.support.env import process_env

HOUR = 3600


def _folder(root: Path, name: str, age: float) -> Path:
    path = root / name
    path.mkdir()
    (path / "final.mp4").write_bytes(b"x" * 1000)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_only_old_folders_of_the_stage_go(tmp_path):
    old = _folder(tmp_path, "compose-CAold-abc", 2 * HOUR)
    fresh = _folder(tmp_path, "compose-CAfresh-def", 60)  # a compose still running
    other = _folder(tmp_path, "audio-CAold-ghi", 2 * HOUR)  # another stage's: its own worker decides
    stray = tmp_path / "compose-notes.txt"
    stray.write_text("not a folder")
    os.utime(stray, (0, 0))

    assert remove_stale(tmp_path, "compose", HOUR) == [old]

    assert not old.exists()
    assert fresh.exists() and other.exists() and stray.exists()


def test_a_symlinked_folder_is_not_followed(tmp_path):
    target = _folder(tmp_path, "keep", 2 * HOUR)
    link = tmp_path / "compose-CAlink-abc"
    link.symlink_to(target)
    os.utime(link, (0, 0), follow_symlinks=False)

    assert remove_stale(tmp_path, "compose", HOUR) == []
    assert (target / "final.mp4").exists()


def test_a_missing_tmp_dir_is_nothing_to_do(tmp_path):
    assert remove_stale(tmp_path / "nowhere", "compose", HOUR) == []


@pytest.mark.parametrize(
    "stage, limit_var",
    [("compositor", "COMPOSE_TIMEOUT"), ("audio", "SPLIT_TIMEOUT"), ("generation", "FAL_JOB_TIMEOUT"), ("ingest", "DOWNLOAD_TIMEOUT")],
)
def test_a_worker_clears_its_stages_leftovers_as_it_starts(tmp_path, stage, limit_var):
    module, prefix = f"services.{stage}.actors", pipeline.row(stage).tmp_prefix
    tmp_dir = tmp_path / "tmp"
    # Older than the stage's time limit (under 2 hours for every stage with its timeout at 60 s);
    # the live one is younger than any (generation's, the shortest, is 10 minutes).
    left = _folder(tmp_dir, f"{prefix}-CA0123456789abcdef0123456789abcdef-x1", 3 * HOUR)
    live = _folder(tmp_dir, f"{prefix}-CAfedcba9876543210fedcba9876543210-x2", 5 * 60)
    other = _folder(tmp_dir, "other-CA0123456789abcdef0123456789abcdef-x3", 3 * HOUR)  # not this stage's
    env = process_env(TMP_DIR=tmp_dir, DATABASE_URL=f"sqlite:///{tmp_path / 'worker.db'}", BROKER_URL="memory://", **{limit_var: "60"})
    done = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert not left.exists()
    assert live.exists() and other.exists()
    assert "left by a killed worker" in done.stderr


def test_every_stage_makes_its_temp_folders_where_its_janitor_looks(tmp_path, monkeypatch):
    """The folder a stage's work makes is one its worker's janitor removes once its process is gone."""
    call_id = "CA0123456789abcdef0123456789abcdef"
    root = tmp_path / "work"
    settings = Settings(tmp_dir=root)
    unfinished = []  # blocks never left, as a SIGKILLed worker leaves them (held, or closing them would clean up)
    for stage in pipeline.STAGES:
        unfinished.append(pipeline.temp_folder(stage, call_id, root))
        folder = unfinished[-1].__enter__()
        assert folder.parent == root and folder.name.startswith(f"{pipeline.row(stage).tmp_prefix}-{call_id}-")
        assert owners.owner_of(folder) == owners.me()
        stamp = time.time() - pipeline.row(stage).time_limit(settings) - 60
        os.utime(folder, (stamp, stamp))
        assert clear_stage(stage, settings) == [], "this process runs: its folder may be in use, however old"
        with monkeypatch.context() as gone:
            gone.setattr(owners, "alive", lambda owner: False)
            assert clear_stage(stage, settings) == [folder], stage
        assert not folder.exists()
    assert list(root.iterdir()) == []


HOLDER = """
import sys, time
from pathlib import Path
from shared import owners, pipeline
block = pipeline.temp_folder(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
print(block.__enter__(), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("stage", pipeline.STAGES)
def test_the_folder_of_a_killed_process_goes_at_once_a_running_ones_stays(tmp_path, stage):
    """A restarted worker does not wait out the time limit for a folder whose process is gone."""
    root = tmp_path / "work"
    held = [
        subprocess.Popen([sys.executable, "-c", HOLDER, stage, call_id, str(root)], stdout=subprocess.PIPE, text=True)
        for call_id in ("CA" + "1" * 32, "CA" + "2" * 32)
    ]
    try:
        killed, running = (Path(proc.stdout.readline().strip()) for proc in held)
        assert killed.is_dir() and running.is_dir()
        held[0].kill()
        held[0].wait(10)

        assert clear_stage(stage, Settings(tmp_dir=root)) == [killed]
        assert running.is_dir()
    finally:
        for proc in held:
            proc.kill()
            proc.wait(10)
    # Its process ended too: the next worker to start removes it.
    assert clear_stage(stage, Settings(tmp_dir=root)) == [running]


def test_a_reused_pid_does_not_keep_a_dead_processs_folder(tmp_path):
    """A container's restarted worker often has its predecessor's pid: the start time tells them apart."""
    me = owners.me()
    reused = _folder(tmp_path, f"compose-CAx-{me.host}.{me.pid}.{me.start + 1}-abc_1", 60)
    mine = _folder(tmp_path, f"compose-CAy-{me.tag}-abc_2", 2 * HOUR)

    assert remove_stale(tmp_path, "compose", HOUR) == [reused]
    assert mine.exists()


def test_another_hosts_folder_is_left_to_the_age_rule(tmp_path):
    """Its pid means nothing in this pid namespace."""
    fresh = _folder(tmp_path, "compose-CAx-0badc0de.1.5-abc_1", 60)
    old = _folder(tmp_path, "compose-CAy-0badc0de.2.5-abc_2", 2 * HOUR)

    assert remove_stale(tmp_path, "compose", HOUR) == [old]
    assert fresh.exists()


def test_the_folder_of_a_killed_but_unreaped_process_goes(tmp_path):
    """A zombie (killed, its parent not waiting for it, as under a container's pid 1) is not running."""
    root = tmp_path / "work"
    held = subprocess.Popen([sys.executable, "-c", HOLDER, "compositor", "CA" + "3" * 32, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        killed = Path(held.stdout.readline().strip())
        os.kill(held.pid, 9)
        deadline = time.monotonic() + 10
        while "Z" not in Path(f"/proc/{held.pid}/stat").read_text().rsplit(")", 1)[1][:3] and time.monotonic() < deadline:
            time.sleep(0.05)  # not reaped: this test is its parent and does not wait yet

        assert clear_stage("compositor", Settings(tmp_dir=root)) == [killed]
    finally:
        held.kill()
        held.wait(10)
