"""The audio service. Code outside it uses two entry points only:

- ``services.audio.actors``: the worker (``dramatiq services.audio.actors``).
  Importing it boots the process: settings, logging, database, broker.
- this package: the split itself and the jobs' length limit, for code that
  must run exactly what the worker runs without being a worker (the benchmark). Importing it boots
  nothing: no broker, no database.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

from .probe import probe_recording
from .segments import job_limit
from .split import build_command

__all__ = ["split_command", "job_limit"]


def split_command(source: Path, outputs: dict[str, Path], settings: Settings, *, workdir: Path) -> list[str]:
    """The FFmpeg command the worker runs to split ``source`` into ``outputs[side]`` (one mono MP3 a side).

    ``source`` is checked first, as the worker checks it (``shared.errors.PermanentError``
    when it is not a dual-channel recording it accepts); ffprobe's report goes to ``workdir``.
    """
    info = probe_recording(source, ffprobe=settings.ffprobe_binary, max_seconds=settings.recording_max_seconds, workdir=workdir)
    return build_command(source, outputs, info, settings)
