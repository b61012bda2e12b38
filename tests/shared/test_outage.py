"""An environmental failure (the store away, TMP_DIR full) is retried for STORAGE_OUTAGE_TOLERANCE, whatever the stage's budget."""

from __future__ import annotations

import errno
import socket
import uuid

import dramatiq
import pytest
from dramatiq.middleware import CurrentMessage

from shared import keys, outage, skeleton
from shared.contracts import Contract
from shared.errors import NoSpace, PermanentError, StorageUnavailable
from shared.models import Call, Stage, VideoStatus

CALL = "CA" + "5" * 32
#: A probe actor on the audio stage's queue, with the audio stage's small budget.
PROBE = Contract("outage_probe", "audio", ("call_id",))


@pytest.fixture
def probe(stub_broker, monkeypatch, settings_env):
    """The probe actor (max_retries=1) failing as ``script`` says, then succeeding; what each try ended with."""
    monkeypatch.setattr(outage, "FIRST_DELAY_MS", 20)
    monkeypatch.setattr(outage, "MAX_DELAY_MS", 100)
    script: list[BaseException] = []
    outcomes: list[BaseException | None] = []
    delays: list[int | None] = []

    class Seen(dramatiq.Middleware):
        def after_process_message(self, broker, message, *, result=None, exception=None):
            outcomes.append(exception)
            delays.append(getattr(exception, "delay", None))

    @skeleton.actor(PROBE, max_retries=1, min_backoff=10, max_backoff=10)
    def outage_probe(call_id: str) -> None:
        if script:
            raise script.pop(0)

    current = None if any(isinstance(m, CurrentMessage) for m in stub_broker.middleware) else CurrentMessage()
    if current is not None:
        stub_broker.add_middleware(current)
    seen = Seen()
    stub_broker.add_middleware(seen)
    worker = dramatiq.Worker(stub_broker, queues={"audio"}, worker_timeout=20, worker_threads=1)
    worker.start()

    def send(*failures: BaseException, tolerance: int = 60) -> None:
        settings_env(STORAGE_OUTAGE_TOLERANCE=str(tolerance))
        script[:] = list(failures)
        stub_broker.enqueue(PROBE.message(call_id=CALL))
        stub_broker.join("audio", fail_fast=False)
        worker.join()

    try:
        yield send, outcomes, delays
    finally:
        worker.stop()
        stub_broker.middleware.remove(seen)
        if current is not None:
            stub_broker.middleware.remove(current)
        stub_broker.actors.pop(PROBE.actor_name, None)


def _refused() -> StorageUnavailable:
    return StorageUnavailable(f"the object store failed the upload of {keys.recording_key(CALL)} (EndpointConnectionError)")


def test_an_outage_longer_than_the_stages_budget_is_outlasted(sqlite_db, probe):
    send, outcomes, delays = probe
    Call.create(id=CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(*[_refused() for _ in range(5)])  # the stage's own budget is one retry
    assert len(outcomes) == 6 and outcomes[-1] is None, outcomes
    assert all(isinstance(exc, dramatiq.Retry) for exc in outcomes[:5])
    assert delays[:5] == [20, 40, 80, 100, 100]  # doubling, capped, never a sleep in the thread
    assert Call.get_by_id(CALL).video_status == VideoStatus.PENDING


def test_the_retries_do_not_spend_the_stages_budget(sqlite_db, probe):
    send, outcomes, _delays = probe
    Call.create(id=CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(_refused(), _refused(), RuntimeError("a bug"))  # the stage's one retry is still there after the outage
    assert outcomes[-1] is None and len(outcomes) == 4


def test_a_full_tmp_dir_is_retried_and_named(sqlite_db, probe, settings_env, tmp_path):
    send, outcomes, _delays = probe
    settings_env(TMP_DIR=str(tmp_path))
    Call.create(id=CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(OSError(errno.ENOSPC, "No space left on device"))
    assert outcomes[-1] is None and len(outcomes) == 2
    assert str(outcomes[0]).startswith(f"no space left in TMP_DIR ({tmp_path}, ")


def test_past_the_tolerance_the_call_fails_naming_what_failed(sqlite_db, probe):
    from prometheus_client import REGISTRY

    send, outcomes, _delays = probe
    before = REGISTRY.get_sample_value("callreel_environment_failures_total", {"stage": "audio", "kind": "storage"}) or 0
    Call.create(id=CALL, stage=Stage.AUDIO, video_status=VideoStatus.PENDING)
    send(*[_refused() for _ in range(100)], tolerance=1)
    assert isinstance(outcomes[-1], PermanentError)
    call = Call.get_by_id(CALL)
    assert call.video_status == VideoStatus.FAILED
    assert call.video_error_message.startswith(f"the object store failed the upload of {keys.recording_key(CALL)}")
    assert "STORAGE_OUTAGE_TOLERANCE=1" in call.video_error_message
    after = REGISTRY.get_sample_value("callreel_environment_failures_total", {"stage": "audio", "kind": "storage"})
    assert after == before + len(outcomes)


def test_delays_double_and_stay_within_the_window():
    assert [outage.delay_ms(n, 3600) for n in (1, 2, 3, 6, 7, 20)] == [2000, 4000, 8000, 60000, 60000, 60000]
    assert outage.delay_ms(5, 3.5) == 3500  # the last try lands at the end of the window
    assert outage.delay_ms(5, 0.1) == outage.FIRST_DELAY_MS


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_store_says_which_request_failed(s3_server, settings_env, tmp_path):
    from shared.storage import get_storage

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    settings_env(**{**s3_server.env(bucket), "S3_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}", "S3_MAX_ATTEMPTS": "1"})
    store = get_storage()
    (tmp_path / "a.mp3").write_bytes(b"abc")
    key = keys.recording_key(CALL)
    with pytest.raises(StorageUnavailable, match=f"^the object store failed the upload of {key} \\(EndpointConnectionError"):
        store.upload_file(tmp_path / "a.mp3", key)
    with pytest.raises(StorageUnavailable, match=f"download of {key}"):
        store.download_file(key, tmp_path / "b.mp3")
    with pytest.raises(StorageUnavailable, match=f"size lookup of {key}"):
        store.size(key)


def test_a_store_saying_slow_down_is_unavailable_and_a_missing_key_is_not(s3_server, settings_env, tmp_path):
    from shared.storage import ObjectNotFound, get_storage
    from tests.support.s3_proxy import FaultyS3Proxy

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    proxy = FaultyS3Proxy(s3_server.url).start()
    try:
        settings_env(**{**s3_server.env(bucket), "S3_ENDPOINT_URL": proxy.url, "S3_MAX_ATTEMPTS": "1"})
        store = get_storage()
        store.ensure_bucket()
        (tmp_path / "a.mp3").write_bytes(b"abc")
        proxy.refuse_for(30)
        with pytest.raises(StorageUnavailable, match="upload of .*SlowDown"):
            store.upload_file(tmp_path / "a.mp3", keys.recording_key(CALL))
        proxy.clear()
        with pytest.raises(ObjectNotFound):
            store.download_file(keys.video_key(CALL), tmp_path / "none")
    finally:
        proxy.stop()


def test_no_space_reads_as_the_disk_not_the_input(tmp_path):
    from shared import disk
    from shared.ffmpeg import FFmpegFailed

    failed = FFmpegFailed("compose", 1, "Error writing trailer of final.mp4: No space left on device")
    assert isinstance(disk.as_no_space(failed, tmp_path), NoSpace)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("wrapped") from None
    except RuntimeError as wrapped:
        assert isinstance(disk.as_no_space(wrapped, tmp_path), NoSpace)
    assert disk.as_no_space(FFmpegFailed("compose", 1, "moov atom not found"), tmp_path) is None  # room left: the input
    assert disk.as_no_space(ValueError("bad"), tmp_path) is None
    with pytest.raises(NoSpace, match=r"^no space left in TMP_DIR \(.*, about 1000000000000000.0 MB needed\)"):
        disk.ensure_free(tmp_path, 10**21)
    disk.ensure_free(tmp_path, 1)
