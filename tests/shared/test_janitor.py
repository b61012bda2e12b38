"""Temp folders left by killed workers: removed at worker start, and only when no message can own them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import pipeline
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


def test_every_stage_makes_its_temp_folders_where_its_janitor_looks(tmp_path):
    """The folder a stage's work makes is one its worker's janitor removes once it is stale."""
    call_id = "CA0123456789abcdef0123456789abcdef"
    root = tmp_path / "work"
    settings = Settings(tmp_dir=root)
    unfinished = []  # blocks never left, as a SIGKILLed worker leaves them (held, or closing them would clean up)
    for stage in pipeline.STAGES:
        unfinished.append(pipeline.temp_folder(stage, call_id, root))
        folder = unfinished[-1].__enter__()
        assert folder.parent == root and folder.name.startswith(f"{pipeline.row(stage).tmp_prefix}-{call_id}-")
        assert clear_stage(stage, settings) == [], "a folder younger than the stage's time limit may be in use"
        stamp = time.time() - pipeline.row(stage).time_limit(settings) - 60
        os.utime(folder, (stamp, stamp))
        assert clear_stage(stage, settings) == [folder], stage
        assert not folder.exists()
    assert list(root.iterdir()) == []
