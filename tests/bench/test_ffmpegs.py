"""bench/ffmpegs.py: which FFmpeg build the benchmark's commands run."""

from __future__ import annotations

import os
import shutil

import pytest

from bench import ffmpegs
from tests.support.media import fake_binary


def _folder(tmp_path, version_line: str):
    for tool in ("ffmpeg", "ffprobe"):
        fake_binary(tmp_path / tool, version_line)
    return tmp_path


def test_a_folder_first_on_path_is_the_ffmpeg_run_inside_the_block_only(tmp_path):
    before = ffmpegs.version()
    with ffmpegs.first_on_path(_folder(tmp_path, "ffmpeg version 7.1.5-0+deb13u1 Copyright (c) 2000-2026")):
        assert ffmpegs.version() == "7.1.5-0+deb13u1"
        assert shutil.which("ffprobe") == str(tmp_path / "ffprobe")
    assert ffmpegs.version() == before != "7.1.5-0+deb13u1"


def test_a_folder_without_both_tools_is_refused(tmp_path):
    (tmp_path / "ffmpeg").write_text("#!/bin/sh\n")
    (tmp_path / "ffmpeg").chmod(0o755)
    path = os.environ["PATH"]
    with pytest.raises(ValueError, match="no runnable ffprobe"):
        ffmpegs.put_first(tmp_path)
    assert os.environ["PATH"] == path


def test_an_unreadable_version_is_a_question_mark(tmp_path):
    with ffmpegs.first_on_path(_folder(tmp_path, "not ffmpeg at all")):
        assert ffmpegs.version() == "?"
