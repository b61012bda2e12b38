"""The ``callreel`` command."""

from __future__ import annotations

import argparse
import sys

from shared.settings import SettingsError

__all__ = ["main"]


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.db import init_database
    from shared.logs import configure_logging
    from shared.migrations import run_migrations

    configure_logging()
    init_database()
    changes = run_migrations()
    print("\n".join(changes) if changes else "schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callreel", description="Turn dual-channel call recordings into split-screen videos.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or update the database schema (idempotent)").set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
