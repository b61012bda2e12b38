"""Ten calls arriving together: all completed, none lost, none duplicated; throughput and memory printed.

Ten are five times what each worker takes at once (2 threads), so every stage has a backlog; the
figures in docs/reliability.md come from ``tests/e2e/load.py --calls 20`` (and 50), run on its own.
"""

from __future__ import annotations

import pytest

from tests.e2e.load import run_load

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]

CALLS = 10


@pytest.mark.timeout(900)
def test_ten_calls_arriving_together(pipeline, capsys):
    result = run_load(pipeline, CALLS)
    with capsys.disabled():
        print("\n" + result.report())
    assert result.problems == [], result.report()
    assert result.statuses == {"completed": CALLS}
    # Every worker was measured while it worked, FFmpeg children included.
    roles = {(service, role) for service, role, _, _ in result.memory}
    for service in ("ingest", "audio", "generation", "compositor"):
        assert (service, "worker") in roles, roles
    assert ("compositor", "ffmpeg") in roles and ("audio", "ffmpeg") in roles
