"""FFmpeg and ffprobe, run one way for every stage.

Every FFmpeg or ffprobe process the services start goes through ``run`` (or
``output``, ``probe``): a deadline of its own, a process group killed whatever
ends the wait, a child that dies with its worker (``children``), and one error
family (``errors``); a file from outside is opened as one known format through
the file protocol only (``inputs``). What a stage asks FFmpeg to do (its filters, what a split
or a render means) stays in the stage; what a binary can do is ``version``'s,
where each side speaks, from silencedetect's log, is ``speech``'s, and how
much the picture jumps at a cut, from the ssim filter, is ``ssim``'s.
"""

from __future__ import annotations

from .errors import FFmpegError, FFmpegFailed, FFmpegKilled, FFmpegTimeout, InvalidMedia
from .inputs import IMAGE, RECORDING, VIDEO, file_url, input_args, input_options, recording_format, sniff
from .probe import PROBE_TIMEOUT, VideoInfo, probe, probe_duration, probe_rendered, probe_video
from .run import Progress, output, run, summarise, tail
from .speech import Interval, parse_silences, silencedetect_options, speech_intervals
from .ssim import Seam, consecutive_ssim, seam_report
from .version import ffmpeg_version, graph_file_option, threaded_cli

__all__ = [
    "FFmpegError",
    "FFmpegFailed",
    "FFmpegKilled",
    "FFmpegTimeout",
    "InvalidMedia",
    "RECORDING",
    "VIDEO",
    "IMAGE",
    "sniff",
    "recording_format",
    "input_options",
    "input_args",
    "file_url",
    "Progress",
    "run",
    "output",
    "summarise",
    "tail",
    "PROBE_TIMEOUT",
    "VideoInfo",
    "probe",
    "probe_video",
    "probe_rendered",
    "probe_duration",
    "ffmpeg_version",
    "threaded_cli",
    "graph_file_option",
    "Interval",
    "silencedetect_options",
    "parse_silences",
    "speech_intervals",
    "Seam",
    "consecutive_ssim",
    "seam_report",
]
