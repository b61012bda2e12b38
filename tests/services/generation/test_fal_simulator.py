"""The fal simulator (tests/support/fake_fal.py, ``simulate``): fal's clock, concurrency, rate limit and bill, over its HTTPS protocol."""

from __future__ import annotations

import base64
import ssl
import subprocess
import time

import httpx
import pytest

from tests.support.fake_fal import Simulation

KEY = {"Authorization": "Key sim-key-1"}
MODEL = "fal-ai/stable-avatar"  # $0.10 per generated second, at least 4 s (shared/fal_models.py)


@pytest.fixture(scope="module")
def audio_url(tmp_path_factory) -> str:
    """Two seconds of MP3 inside the URL itself (the fake fetches it as a runner would)."""
    path = tmp_path_factory.mktemp("sim") / "two.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=2:sample_rate=8000", "-c:a", "libmp3lame", str(path)],
        check=True,
    )
    return "data:audio/mpeg;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def client(fake_fal):
    with httpx.Client(base_url=f"https://{fake_fal.host}", verify=ssl.create_default_context(cafile=fake_fal.ca_file), timeout=10) as http:
        yield http


def submit(client, audio_url: str, headers=KEY) -> httpx.Response:
    return client.post(f"/{MODEL}", json={"image_url": audio_url, "audio_url": audio_url, "prompt": "p"}, headers=headers)


def status(client, request_id: str) -> dict:
    return client.get(f"/fal-ai/stable-avatar/requests/{request_id}/status", headers=KEY).json()


def settle(fake, count: int) -> None:
    """Wait until the fake has probed every job's audio (done in the background when submitted)."""
    deadline = time.monotonic() + 20
    while sum(1 for j in fake.accepted() if j.ready_at is not None) < count:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_submits_beyond_the_burst_get_429_per_key(fake_fal, client, audio_url):
    fake_fal.simulate(Simulation(burst=3, submits_per_second=0.001, queue_seconds=0))
    codes = [submit(client, audio_url).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert submit(client, audio_url, headers={"Authorization": "Key another-account"}).status_code == 200
    assert fake_fal.bill()["rate_limited"] == 1


def test_jobs_beyond_the_concurrency_stay_in_queue_and_run_when_a_runner_frees(fake_fal, client, audio_url):
    # Speed 2 at 4× time: each 2 s video computes 4 simulated seconds, 1 s of wall clock.
    fake_fal.simulate(Simulation(concurrency=2, speed=2, queue_seconds=0, time_scale=4))
    ids = [submit(client, audio_url).json()["request_id"] for _ in range(3)]
    settle(fake_fal, 3)
    states = [status(client, i) for i in ids]
    assert [s["status"] for s in states] == ["IN_PROGRESS", "IN_PROGRESS", "IN_QUEUE"]
    assert states[2]["queue_position"] == 0
    deadline = time.monotonic() + 10
    while any(status(client, i)["status"] != "COMPLETED" for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    jobs = {j.request_id: j for j in fake_fal.accepted()}
    first, second, third = (jobs[i] for i in ids)
    assert third.started_at >= min(first.ends_at, second.ends_at)  # it waited for a runner
    assert third.ends_at - third.started_at == pytest.approx(2 * third.video_seconds / 4, rel=0.05)
    assert fake_fal.bill()["max_running"] == 2
    assert client.get(f"/fal-ai/stable-avatar/requests/{ids[2]}", headers=KEY).json()["video"]["url"]


def test_the_bill_is_list_price_for_videos_made_and_nothing_for_failed_jobs(fake_fal, client, audio_url):
    fake_fal.simulate(Simulation(concurrency=5, speed=1, queue_seconds=0, time_scale=50))
    made = [submit(client, audio_url).json()["request_id"] for _ in range(2)]
    fake_fal.simulate(Simulation(concurrency=5, speed=1, queue_seconds=0, time_scale=50, failure_rate=1.0))
    failed = submit(client, audio_url).json()["request_id"]
    settle(fake_fal, 3)
    deadline = time.monotonic() + 10
    while any(status(client, i)["status"] != "COMPLETED" for i in [*made, failed]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status(client, failed)["error_type"] == "runner_error"
    bill = fake_fal.bill()
    # Two 2 s videos, each billed stable-avatar's 4 s minimum at $0.10.
    assert bill["jobs"] == 2 and bill["seconds"] == pytest.approx(8.0) and bill["dollars"] == pytest.approx(0.80)
    assert {r["request_id"] for r in bill["records"]} == set(made)
    assert client.get("/_simulator/bill").json()["dollars"] == pytest.approx(0.80)
