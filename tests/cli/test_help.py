"""``callreel --version`` and every subcommand's ``--help``: a one-line description and an example, through the real command."""

import argparse
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from callreel.cli import build_parser

CLI = Path(sys.executable).with_name("callreel")


def _subcommands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_version_is_the_installed_package_version():
    result = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"callreel {version('callreel')}"


def test_every_subcommand_is_walked():
    # The walk below covers what the parser has; this guards against it finding nothing.
    assert {"render", "serve", "status", "list", "retry", "sweep", "migrate", "bucket"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_help_has_a_one_line_description_and_an_example(command):
    result = subprocess.run([str(CLI), command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("\n\n")
    assert blocks[0].startswith(f"usage: callreel {command}")
    description = blocks[1]
    assert "\n" not in description.strip() and description.strip().endswith("."), description
    [example] = result.stdout.split("example:\n", 1)[1].strip().splitlines()
    words = [w for w in shlex.split(example) if "=" not in w]  # VAR=value before the command sets the environment
    assert words[:2] == ["callreel", command], example
    assert build_parser().parse_args(words[1:]).command == command  # the example is a command line that parses
