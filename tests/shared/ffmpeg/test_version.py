"""What an FFmpeg binary can do, told by the binary itself: its threading and its graph-file option."""

from __future__ import annotations

import pytest

from shared.ffmpeg import graph_file_option, threaded_cli
from tests.support.media import fake_binary


@pytest.mark.parametrize(
    ("first_line", "threaded"),
    [
        ("ffmpeg version 7.1.5-0+deb13u1 Copyright (c) 2000-2026 the FFmpeg developers", True),  # the images'
        ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers", False),  # Debian 12
        ("ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright (c) 2000-2026", True),  # static builds
        ("ffmpeg version 6.1.1-3ubuntu5 Copyright (c) 2000-2023", False),
        ("ffmpeg version N-117000-gabcdef Copyright (c) 2000-2026", True),  # a git build
        ("something else entirely", False),
    ],
)
def test_a_threaded_command_line_is_told_by_the_binarys_version(tmp_path, first_line, threaded):
    assert threaded_cli(fake_binary(tmp_path / "ffmpeg", first_line)) is threaded


def test_a_current_static_ffmpeg_is_threaded_and_a_missing_one_is_not(tmp_path):
    import imageio_ffmpeg

    assert threaded_cli(imageio_ffmpeg.get_ffmpeg_exe()) is True
    assert threaded_cli(str(tmp_path / "missing")) is False


@pytest.mark.parametrize(
    ("help_text", "expected"),
    [
        ("-filter_complex graph  create a complex filtergraph\n-filter_complex_script filename  read it from a file", "-filter_complex_script"),
        ("-filter_complex <graph_description>  create a complex filtergraph", "-/filter_complex"),
    ],
)
def test_the_graph_file_option_follows_the_binarys_help(tmp_path, help_text, expected):
    assert graph_file_option(fake_binary(tmp_path / "ffmpeg", help_text)) == expected


def test_an_unrunnable_binary_keeps_the_long_standing_option(tmp_path):
    assert graph_file_option(str(tmp_path / "missing")) == "-filter_complex_script"
