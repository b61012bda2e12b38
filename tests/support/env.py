"""One way to build the environment of a process a test starts (a worker, gunicorn, the CLI).

Nothing of the developer's own environment leaks in but PATH: a process sees
what the test chose. By default that includes the callreel settings the test
itself runs with, which its fixtures set in ``os.environ`` (``pg_db`` the
database, ``s3`` the bucket, ``settings_env`` anything, the autouse
``clean_env`` the data and temp folders), so a process started by the test
talks to the same database, broker and store. A test that spells out a whole
deployment (the e2e pipeline, a missing-setting check) passes ``inherit=False``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["process_env", "BIN"]

#: The commands of this interpreter's environment (callreel, dramatiq, gunicorn), as in an image's venv.
BIN = Path(sys.executable).parent


def process_env(*, inherit: bool = True, **settings: object) -> dict[str, str]:
    """PATH (this venv's commands first) and unbuffered output, the test's settings, then ``settings``.

    A value of None leaves that variable out (to drop an inherited setting).
    """
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
    if inherit:
        env.update((name, os.environ[name]) for name in _setting_names() if name in os.environ)
    for name, value in settings.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def _setting_names() -> list[str]:
    from shared.settings import declared

    return [f.metadata["env"] for f in declared()]
