"""``dramatiq`` with callreel's logging from its first line: ``python -m shared.dramatiq_cli MODULE [dramatiq's options]``.

The ``dramatiq`` command's main process sets up its own plain-text logging
before it imports anything of ours, and its worker processes do the same
until our code boots; with LOG_FORMAT=json those lines ("booting up",
"Sending signal", a worker that died) were the only ones that were not JSON.
This runs the same command line with callreel's formatter installed first
and ``--skip-logging``, so every line the workers write is JSON. With
LOG_FORMAT=text it is exactly ``dramatiq``.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from .logs import configure_logging
from .settings import SettingsError, get_settings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = get_settings()
    except SettingsError:
        settings = None  # the workers report every problem when they boot
    if settings is not None and settings.log_format == "json":
        configure_logging(settings)
        if "--skip-logging" not in argv:
            argv.append("--skip-logging")
    return dramatiq_main(make_argument_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
