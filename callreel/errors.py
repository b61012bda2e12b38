"""Errors the ``callreel`` command reports as one line, without a traceback."""

__all__ = ["CliError"]


class CliError(Exception):
    """A problem the user can fix; the command exits with status 1."""
