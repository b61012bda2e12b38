"""constraints.txt, the lock: pyproject's pins agree with it, and it is what this .venv runs.

pip refuses an install whose requirement (``falcon==4.4.0`` in pyproject) and
constraint (``falcon==4.5.0`` in the lock) disagree, so a pin bumped in one
place only would break ``make install`` on every fresh machine.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from tests.support.deploy import ROOT

LOCK = ROOT / "constraints.txt"


def _name(raw: str) -> str:
    # PEP 503: names compare case-insensitively, with runs of -_. alike.
    return re.sub(r"[-_.]+", "-", raw).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[_name(name)] = version
    return pins


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        requirements += group
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
        if match and _name(match[1]) != "callreel":
            pins[_name(match[1])] = match[3]
    return pins


def test_every_pin_in_pyproject_is_the_locked_version():
    lock, pins = _lock(), _pyproject_pins()
    assert pins, "pyproject.toml pins nothing?"
    wrong = {name: (version, lock.get(name)) for name, version in pins.items() if lock.get(name) != version}
    assert not wrong, f"pyproject pin vs constraints.txt (run `make lock`): {wrong}"


def test_this_environment_runs_the_locked_versions():
    # make install installs with the lock as constraints, so a test run is a run of the locked set.
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {name: (version, installed.get(name)) for name, version in _lock().items() if installed.get(name) != version}
    assert not differ, f"locked vs installed (run `make install`): {differ}"


def test_make_installs_with_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "--constraint constraints.txt" in makefile
    assert "pip freeze --exclude-editable" in makefile  # make lock
