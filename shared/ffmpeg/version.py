"""What an FFmpeg binary can do, asked of the binary itself.

Debian 12 ships FFmpeg 5.1, the service images' Debian 13 a 7.x, a static
build anything newer, and the benchmark runs whichever is first on PATH: the
command lines the stages build follow the binary they will run.
"""

from __future__ import annotations

import functools
import re

from .errors import FFmpegError
from .run import output

__all__ = ["ffmpeg_version", "threaded_cli", "graph_file_option", "LEGACY_GRAPH_FILE_OPTION"]

# Asking a binary for its version or help reads no media: a minute is generous.
ASK_TIMEOUT = 60

LEGACY_GRAPH_FILE_OPTION = "-filter_complex_script"

_MAJOR = re.compile(r"n?(\d+)\.")


def ffmpeg_version(binary: str) -> str | None:
    """The version this FFmpeg reports (``7.1.5-0+deb13u1``, ``N-117000-gabcdef``), or None if it cannot say.

    Not cached: a bare name such as ``ffmpeg`` finds another build once PATH
    changes (the benchmark's ``--ffmpeg``).
    """
    try:
        line = output([binary, "-hide_banner", "-version"], timeout=ASK_TIMEOUT).split("\n", 1)[0]
    except FFmpegError:
        return None
    words = line.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else None


@functools.cache
def threaded_cli(binary: str) -> bool:
    """Whether this FFmpeg's command line gives every decoder a thread of its own (7.0 and later).

    Then a decoder's own frame threads only add buffers: a call of many
    segments a side renders in less memory without them, and faster, on
    Debian 13's 7.1 (the images'). On 5.1 the main thread decodes every input
    itself, and one thread per decoder makes the same render slower.
    Measured: docs/benchmarks.md, section "Decoder threads on segmented sides".
    Git builds (``N-…``) count as current; an unrunnable binary as old.
    """
    version = ffmpeg_version(binary)
    if version is None:
        return False
    if version.startswith("N-"):
        return True
    found = _MAJOR.match(version)
    return found is not None and int(found[1]) >= 7


@functools.cache
def graph_file_option(binary: str) -> str:
    """The option with which this FFmpeg reads a complex filtergraph from a file.

    ``-filter_complex_script`` was deprecated for ``-/filter_complex`` (any
    option's value read from a file, which older releases reject) and later
    removed (the 9.0 build checked here has no such option). The binary's own
    help decides, once per process.
    """
    try:
        help_text = output([binary, "-hide_banner", "-h", "long"], timeout=ASK_TIMEOUT)
    except FFmpegError:
        return LEGACY_GRAPH_FILE_OPTION  # the render itself will report what is wrong with the binary
    return LEGACY_GRAPH_FILE_OPTION if LEGACY_GRAPH_FILE_OPTION in help_text else "-/filter_complex"
