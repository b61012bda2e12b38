"""Twenty calls arriving together: all completed, none lost, none duplicated; throughput and memory printed."""

from __future__ import annotations

import pytest

from tests.e2e.load import run_load

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.mark.timeout(900)
def test_twenty_calls_arriving_together(pipeline, capsys):
    result = run_load(pipeline, 20)
    with capsys.disabled():
        print("\n" + result.report())
    assert result.problems == [], result.report()
    assert result.statuses == {"completed": 20}
    # Every worker was measured while it worked, FFmpeg children included.
    roles = {(service, role) for service, role, _, _ in result.memory}
    for service in ("ingest", "audio", "generation", "compositor"):
        assert (service, "worker") in roles, roles
    assert ("compositor", "ffmpeg") in roles and ("audio", "ffmpeg") in roles
