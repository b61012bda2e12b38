"""The test command on a new machine: scripts/test-machine.sh, `make test`, .ci/run and the check before the first test."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import preconditions, services

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def _fake_commands(folder: Path, names: list[str], log: Path, status: int = 0) -> dict[str, str]:
    """Commands that record their call line in ``log`` and exit ``status``; returns an environment with them first on PATH."""
    folder.mkdir(exist_ok=True)
    for name in names:
        script = folder / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {status}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def test_test_machine_does_nothing_on_a_machine_that_has_everything(tmp_path):
    # This suite is running, so make test has set the machine up: a second pass installs and starts nothing.
    log = tmp_path / "calls.log"
    env = _fake_commands(tmp_path / "bin", ["apt-get", "sudo", "pg_ctlcluster", "rabbitmq-server", "rabbitmq-plugins", "rabbitmqctl"], log)
    started = time.monotonic()
    result = subprocess.run(["bash", str(ROOT / "scripts" / "test-machine.sh")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not log.exists(), log.read_text()
    assert result.stdout == result.stderr == ""
    assert time.monotonic() - started < 5


LISTEN = (
    "import socket, sys, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
)


def _servers_off(tmp_path, starts: str) -> tuple[dict[str, str], Path, Path]:
    """A machine whose PostgreSQL, RabbitMQ and management ports are free ones; the fake ``starts`` command opens its port."""
    ports = {"pg_ctlcluster": services.free_port(), "rabbitmq-server": services.free_port(), "rabbitmq-plugins": services.free_port()}
    log, pids = tmp_path / "calls.log", tmp_path / "pids"
    env = _fake_commands(tmp_path / "bin", ["apt-get", "sudo", "rabbitmqctl", *[n for n in ports if n != starts]], log)
    opener = tmp_path / "bin" / starts
    opener.write_text(f'#!/bin/sh\necho "{starts} $*" >> "{log}"\n"{sys.executable}" -c "{LISTEN}" {ports[starts]} & echo $! >> "{pids}"\n')
    opener.chmod(0o755)
    env.update(
        TEST_MACHINE_PG_PORT=str(ports["pg_ctlcluster"]),
        TEST_MACHINE_AMQP_PORT=str(ports["rabbitmq-server"]),
        TEST_MACHINE_MANAGEMENT_PORT=str(ports["rabbitmq-plugins"]),
        TEST_MACHINE_WAIT="3",
    )
    return env, log, pids


def _stop(pids: Path) -> None:
    for pid in pids.read_text().split() if pids.exists() else []:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass


def test_test_machine_enables_the_management_plugin_when_its_api_is_off(tmp_path):
    env, log, pids = _servers_off(tmp_path, starts="rabbitmq-plugins")
    # Only the management API is off: PostgreSQL and RabbitMQ "answer" on their real ports.
    env.update(TEST_MACHINE_PG_PORT="5432", TEST_MACHINE_AMQP_PORT="5672", TEST_MACHINE_WAIT="10")
    try:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "test-machine.sh")], capture_output=True, text=True, env=env, timeout=60)
    finally:
        _stop(pids)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "test-machine: enabling RabbitMQ's management API\n"
    assert log.read_text().splitlines() == ["rabbitmqctl -q await_startup", "rabbitmq-plugins enable rabbitmq_management"]


def test_test_machine_says_in_one_line_what_it_could_not_start(tmp_path):
    env, log, pids = _servers_off(tmp_path, starts="pg_ctlcluster")
    try:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "test-machine.sh")], capture_output=True, text=True, env=env, timeout=60)
    finally:
        _stop(pids)
    # PostgreSQL came up; RabbitMQ's start did nothing: one line says so, and which command to run.
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["test-machine: starting PostgreSQL", "test-machine: starting RabbitMQ"]
    [line] = result.stderr.splitlines()
    assert line.startswith("test-machine: RabbitMQ does not answer on 127.0.0.1:") and line.endswith("(start it as root: rabbitmq-server -detached)")
    assert "pg_ctlcluster --skip-systemctl-redirect" in log.read_text() and "rabbitmq-server -detached" in log.read_text()


def test_make_test_fails_when_pytest_runs_no_test(tmp_path):
    stamp = VENV / ".installed-dev"  # assumed up to date: this test checks the test recipe, not the install
    result = subprocess.run(
        ["make", "-o", str(stamp), f"VENV={VENV}", "test-fast", "PYTEST_ARGS=-k no_such_test_anywhere -p no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "pytest ran no test: that is a failure" in result.stderr


@pytest.mark.parametrize("make_status", [0, 2, 5])
def test_ci_runs_the_lint_and_the_readme_test_command_and_keeps_their_status(tmp_path, make_status):
    log = tmp_path / "calls.log"
    env = _fake_commands(tmp_path / "bin", ["make"], log, status=make_status)
    result = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60)
    assert log.read_text() == "make lint\nmake test\n"
    assert result.returncode == make_status


def test_ci_fails_on_a_lint_error_and_still_runs_the_tests(tmp_path):
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    env = _fake_commands(bin_dir, ["make"], log)
    # make lint fails, make test passes.
    (bin_dir / "make").write_text(f'#!/bin/sh\necho "make $*" >> "{log}"\n[ "$1" != lint ]\n')
    result = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60)
    assert log.read_text() == "make lint\nmake test\n"
    assert result.returncode == 1
    assert "make lint failed (exit 1)" in result.stderr


def test_a_machine_without_the_servers_stops_the_run_with_one_line_each(tmp_path):
    # Nothing listens on 127.0.0.1:1, nor on 127.0.0.2:5672 (RabbitMQ listens on 127.0.0.1 only).
    if services.port_open("127.0.0.2", 5672):
        pytest.fail("something answers on 127.0.0.2:5672: this test needs an address where RabbitMQ is not")
    env = {**os.environ, "TEST_PG_ADMIN_DSN": "postgresql://postgres@127.0.0.1:1/test", "TEST_RABBITMQ_HOST": "127.0.0.2"}
    selected = ["tests/shared/test_db.py", "tests/shared/test_broker.py"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selected], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stdout
    out = result.stdout + result.stderr
    assert "Traceback" not in out and " passed" not in out and " failed" not in out, out
    assert "PostgreSQL does not answer on 127.0.0.1:1: start it with `pg_ctlcluster --skip-systemctl-redirect" in out
    assert "RabbitMQ does not answer on 127.0.0.2:5672: start it with `rabbitmq-server -detached`" in out
    assert out.count("`make test`, which sets up all the tests need") == 2  # the management API's line waits for the server's

    # Tests that need neither still run on that machine.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/shared/test_settings.py"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout


def test_without_the_management_api_its_line_names_the_plugin(monkeypatch):
    monkeypatch.setattr(services, "port_open", lambda host, port: port != 15672)
    [line] = preconditions.missing([_Item(marks=["rabbitmq", "rabbitmq_management"])])
    assert line.startswith("RabbitMQ's management API does not answer on 127.0.0.1:15672: enable it with `rabbitmq-plugins enable rabbitmq_management`")
    assert line.endswith("[1 selected test(s)]")
    assert preconditions.missing([_Item(marks=["rabbitmq"])]) == []  # the broker alone is there


def test_what_a_test_needs_comes_from_its_marks_fixtures_and_media():
    assert preconditions.needs(_Item()) == set()
    assert preconditions.needs(_Item(fixtures=["pg_db"])) == {"postgres"}
    assert preconditions.needs(_Item(fixtures=["rabbitmq_url"])) == {"rabbitmq"}
    assert preconditions.needs(_Item(marks=["e2e"])) == {"rabbitmq", "rabbitmq_management", "ffmpeg"}
    assert preconditions.needs(_Item(marks=["browser"])) == {"chromium"}
    assert preconditions.needs(_Item(path=ROOT / "tests" / "services" / "audio" / "test_x.py")) == {"ffmpeg"}

    def speech_test():
        from tests.support import media

        media.speech_call("a.mp3", "hello", "hi")

    assert "espeak-ng" in preconditions.needs(_Item(function=speech_test))


class _Item:
    """What preconditions.needs reads of a pytest item."""

    def __init__(self, marks=(), fixtures=(), path=ROOT / "tests" / "shared" / "test_x.py", function=None) -> None:
        self.marks = [getattr(pytest.mark, name).mark for name in marks]
        self.fixturenames = list(fixtures)
        self.path = path
        self.module = None
        self.function = function or (lambda: None)

    def iter_markers(self):
        return iter(self.marks)
