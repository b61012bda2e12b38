"""The ``download_recording`` actor against a fake Twilio over TLS, moto's S3 over HTTP and PostgreSQL.

The actor runs in a real Dramatiq worker on the in-process broker (ingest queue
only, so the message it hands on to the audio stage stays queued for the test
to read). Retry waits are shortened here; their real values are checked in
the unit tests at the bottom.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import tracemalloc
from pathlib import Path

import dramatiq
import pytest
from dramatiq import Message

from services.ingest import download
from services.ingest.validation import parse_recording_status
from services.ingest.webhook import claim_call
from shared import keys
from shared.contracts import DOWNLOAD_RECORDING, send
from shared.models import Call, Stage, VideoStatus
from shared.errors import PermanentError
from tests.support.outcomes import recording_outcomes


@pytest.fixture
def fast_retries(actors, monkeypatch):
    monkeypatch.setattr(actors.stage, "RETRY_DELAYS_MS", (50, 100, 200))
    monkeypatch.setattr(actors.stage, "NOT_READY_MIN_DELAY_MS", 50)
    monkeypatch.setattr(actors.stage, "NOT_READY_MAX_DELAY_MS", 300)


@pytest.fixture
def worker(pg_db, s3, ingest_env, stub_broker, actors, fast_retries):
    worker = dramatiq.Worker(stub_broker, queues={"ingest"}, worker_timeout=20, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


def new_call(fake, recording, **fields) -> str:
    """The call as the webhook records it."""
    form = fake.callback(recording, **fields)
    status = parse_recording_status(form, recording_hosts=[fake.host])
    assert claim_call(status, None)
    return status.call_sid


def run(broker, worker, call_id: str) -> Call:
    send(DOWNLOAD_RECORDING, call_id=call_id)
    broker.join("ingest", fail_fast=False)
    worker.join()
    return Call.get_by_id(call_id)


def handed_on(broker) -> list[tuple[str, dict]]:
    messages = [Message.decode(data) for data in broker.queues.get("audio", ()).queue] if "audio" in broker.queues else []
    return [(m.actor_name, m.kwargs) for m in messages]


def stored(s3, call_id: str) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        return s3.client.get_object(Bucket=s3.bucket, Key=keys.recording_key(call_id))["Body"].read()
    except ClientError:
        return None


def assert_failed(call: Call, *words: str) -> None:
    assert (call.video_status, call.stage) == (VideoStatus.FAILED, Stage.DONE)
    for word in words:
        assert word in call.video_error_message


# -- success -------------------------------------------------------------------


def test_the_recording_is_streamed_into_s3_and_handed_to_the_audio_stage(worker, stub_broker, fake_twilio, s3):
    body = os.urandom(300_000)
    recording = fake_twilio.add_recording(body)
    call_id = new_call(fake_twilio, recording)

    call = run(stub_broker, worker, call_id)

    assert stored(s3, call_id) == body
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"recordings/{call_id}.mp3")
    assert head["ContentType"] == "audio/mpeg"
    assert (call.stage, call.video_status, call.ingest_attempts) == (Stage.AUDIO, VideoStatus.PENDING, 1)
    assert call.ingest_started_at <= call.ingest_finished_at
    assert handed_on(stub_broker) == [("split_channels", {"call_id": call_id})]
    (get,) = fake_twilio.media_gets(recording)
    assert get.authorized and get.path.endswith(f"/Recordings/{recording.sid}.mp3")
    assert not recording.deleted  # TWILIO_DELETE_RECORDING is off by default


def test_twilios_redirect_to_its_media_storage_is_followed(worker, stub_broker, fake_twilio, s3):
    body = os.urandom(50_000)
    recording = fake_twilio.add_recording(body, script=["redirect"])
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).stage == Stage.AUDIO
    assert stored(s3, call_id) == body
    assert [r.behaviour for r in fake_twilio.requests] == ["redirect", "media"]


def test_the_format_asked_of_twilio_is_a_setting(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(TWILIO_RECORDING_FORMAT="wav")
    recording = fake_twilio.add_recording(b"RIFF....WAVE")
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).stage == Stage.AUDIO
    assert fake_twilio.media_gets(recording)[0].path.endswith(".wav")
    assert s3.client.head_object(Bucket=s3.bucket, Key=keys.recording_key(call_id))["ContentType"] == "audio/wav"


def test_a_slow_body_is_fine_while_it_keeps_coming(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(DOWNLOAD_TIMEOUT="1")
    fake_twilio.slow_seconds = 1.5  # longer than the timeout in all, never idle that long
    body = os.urandom(100_000)
    recording = fake_twilio.add_recording(body, script=["slow"])
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).ingest_attempts == 1
    assert stored(s3, call_id) == body


def test_twilio_deletes_its_copy_once_ours_is_stored_when_asked(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(TWILIO_DELETE_RECORDING="true")
    body = os.urandom(10_000)
    recording = fake_twilio.add_recording(body)
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).stage == Stage.AUDIO
    assert stored(s3, call_id) == body
    assert recording.deleted
    assert [(r.method, r.authorized) for r in fake_twilio.requests] == [("GET", True), ("DELETE", True)]
    assert fake_twilio.requests[1].path.endswith(f"/Recordings/{recording.sid}.json")


# -- retries -------------------------------------------------------------------


def test_404_right_after_the_callback_is_retried_until_served(worker, stub_broker, fake_twilio, s3):
    body = os.urandom(20_000)
    recording = fake_twilio.add_recording(body, script=["404", "404", "ok"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert (call.stage, call.ingest_attempts) == (Stage.AUDIO, 3)
    assert stored(s3, call_id) == body


def test_404_past_the_window_fails_the_call(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(TWILIO_404_WINDOW="2")
    recording = fake_twilio.add_recording(b"never served", script=["404"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert_failed(call, "404", "TWILIO_404_WINDOW=2")
    assert len(fake_twilio.media_gets(recording)) >= 2  # retried inside the window, then stopped
    assert stored(s3, call_id) is None
    assert handed_on(stub_broker) == []


def test_5xx_is_retried_with_dramatiqs_delays(worker, stub_broker, fake_twilio, s3, caplog):
    body = os.urandom(20_000)
    recording = fake_twilio.add_recording(body, script=["500", "503", "ok"])
    call_id = new_call(fake_twilio, recording)
    with caplog.at_level(logging.INFO, logger="dramatiq.middleware.retries.Retries"):
        call = run(stub_broker, worker, call_id)
    assert (call.stage, call.ingest_attempts) == (Stage.AUDIO, 3)
    assert stored(s3, call_id) == body
    delays = [int(d) for d in re.findall(r"in (\d+) milliseconds", caplog.text)]
    assert delays == [50, 100]  # the actor's schedule, applied by Dramatiq's Retries middleware


def test_5xx_three_retries_then_the_call_fails_with_the_reason(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"x" * 1000, script=["500"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert len(fake_twilio.media_gets(recording)) == 4
    assert_failed(call, "after 4 attempts", "HTTP 500")
    assert stored(s3, call_id) is None
    assert handed_on(stub_broker) == []


def test_a_stalled_body_times_out_and_is_retried(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(DOWNLOAD_TIMEOUT="1")
    fake_twilio.stall_seconds = 2.5
    body = os.urandom(20_000)
    recording = fake_twilio.add_recording(body, script=["stall", "ok"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert (call.stage, call.ingest_attempts) == (Stage.AUDIO, 2)
    assert stored(s3, call_id) == body


def test_a_truncated_body_is_never_stored_and_is_fetched_again(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(S3_PART_SIZE_MB="5")  # the whole body would go up in three parts
    body = os.urandom(12 * 1024 * 1024)
    recording = fake_twilio.add_recording(body, script=["truncate", "ok"])
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).ingest_attempts == 2
    assert stored(s3, call_id) == body


def test_always_truncated_fails_and_leaves_nothing_half_written(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(S3_PART_SIZE_MB="5")
    recording = fake_twilio.add_recording(os.urandom(12 * 1024 * 1024), script=["truncate"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert_failed(call, "after 4 attempts", "complete message body")
    assert stored(s3, call_id) is None
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


# -- permanent failures ----------------------------------------------------------


def test_bad_credentials_fail_at_once_with_a_clear_reason(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(TWILIO_AUTH_TOKEN="wrong-token")
    recording = fake_twilio.add_recording(b"secret audio")
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert [r.authorized for r in fake_twilio.requests] == [False]  # one try, no retry
    assert_failed(call, "HTTP 401", "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")


def test_403_fails_at_once(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"audio", script=["403"])
    call = run(stub_broker, worker, new_call(fake_twilio, recording))
    assert len(fake_twilio.media_gets(recording)) == 1
    assert_failed(call, "HTTP 403", "Forbidden")


def test_a_recording_over_the_size_limit_is_refused(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(RECORDING_MAX_BYTES="1000")
    recording = fake_twilio.add_recording(os.urandom(5000))
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert len(fake_twilio.media_gets(recording)) == 1
    assert_failed(call, "5000 bytes", "RECORDING_MAX_BYTES")
    assert stored(s3, call_id) is None


def test_an_error_page_served_as_200_is_not_stored(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"audio", script=["html"])
    call_id = new_call(fake_twilio, recording)
    assert_failed(run(stub_broker, worker, call_id), "text/html")
    assert stored(s3, call_id) is None


def test_a_url_changed_in_the_database_is_never_fetched(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"audio")
    call_id = new_call(fake_twilio, recording)
    Call.update(recording_url="https://169.254.169.254/latest/meta-data").where(Call.id == call_id).execute()
    assert_failed(run(stub_broker, worker, call_id), "Refusing to download", "not an allowed Twilio host")
    assert fake_twilio.requests == []


def test_missing_credentials_fail_the_call_with_what_to_set(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(TWILIO_AUTH_TOKEN="")
    call_id = new_call(fake_twilio, fake_twilio.add_recording(b"audio"))
    assert_failed(run(stub_broker, worker, call_id), "TWILIO_AUTH_TOKEN is required")


def test_the_download_goes_through_a_temp_folder_under_tmp_dir_removed_in_every_outcome(
    worker, stub_broker, fake_twilio, s3, ingest_env, monkeypatch
):
    from shared.settings import get_settings

    tmp_dir = get_settings().tmp_dir
    uploaded_from = []
    upload_file = type(s3).upload_file

    def spy(self, path, key, content_type=None):
        uploaded_from.append(Path(path))
        assert Path(path).read_bytes() == body  # only a whole, checked file goes up
        upload_file(self, path, key, content_type)

    monkeypatch.setattr(type(s3), "upload_file", spy)
    body = os.urandom(300 * 1024)
    good = new_call(fake_twilio, fake_twilio.add_recording(body))
    bad = new_call(fake_twilio, fake_twilio.add_recording(body, script=["truncate"]))
    assert run(stub_broker, worker, good).stage == Stage.AUDIO
    assert_failed(run(stub_broker, worker, bad), "complete message body")
    assert [p.parent.parent for p in uploaded_from] == [tmp_dir]
    assert uploaded_from[0].parent.name.startswith(f"ingest-{good}-")
    assert list(tmp_dir.iterdir()) == []


# -- redelivery ------------------------------------------------------------------


def test_a_redelivered_message_after_success_does_nothing(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"audio")
    call_id = new_call(fake_twilio, recording)
    run(stub_broker, worker, call_id)
    call = run(stub_broker, worker, call_id)
    assert (call.stage, call.ingest_attempts) == (Stage.AUDIO, 1)
    assert len(fake_twilio.media_gets(recording)) == 1
    assert len(handed_on(stub_broker)) == 1


def test_a_worker_lost_after_storing_only_hands_on_again(worker, stub_broker, fake_twilio, s3, ingest_env):
    """Killed between finish and advance: the redelivery finds the recording stored (and maybe gone at Twilio)."""
    ingest_env(TWILIO_DELETE_RECORDING="true")
    recording = fake_twilio.add_recording(b"audio")
    call_id = new_call(fake_twilio, recording)
    run(stub_broker, worker, call_id)
    Call.update(stage=Stage.INGEST).where(Call.id == call_id).execute()
    call = run(stub_broker, worker, call_id)
    assert call.stage == Stage.AUDIO and call.video_status == VideoStatus.PENDING
    assert len(fake_twilio.media_gets(recording)) == 1
    assert stored(s3, call_id) == b"audio"
    assert handed_on(stub_broker) == [("split_channels", {"call_id": call_id})] * 2


def test_an_unknown_or_malformed_call_id_never_crashes_the_worker(worker, stub_broker, fake_twilio, s3):
    with recording_outcomes(stub_broker) as outcomes:
        send(DOWNLOAD_RECORDING, call_id="CA" + "0" * 32)
        send(DOWNLOAD_RECORDING, call_id="../../etc/passwd")
        stub_broker.join("ingest", fail_fast=False)
        worker.join()
    assert fake_twilio.requests == [] and Call.select().count() == 0
    # Each ran once and ended as meant: the unknown call quietly, the malformed id refused for good (not retried).
    assert [(o.kwargs["call_id"], type(o.exception), o.retries) for o in outcomes] == [
        ("CA" + "0" * 32, type(None), 0), ("../../etc/passwd", PermanentError, 0),
    ]
    # The worker is still there and working.
    recording = fake_twilio.add_recording(b"audio")
    assert run(stub_broker, worker, new_call(fake_twilio, recording)).stage == Stage.AUDIO


# -- memory ----------------------------------------------------------------------


def test_memory_stays_constant_whatever_the_recording_size(pg_db, local_store, ingest_env, stub_broker, actors, fake_twilio):
    """24 MB through the local store: the download never holds more than a few chunks."""
    size = 24 * 1024 * 1024
    recording = fake_twilio.add_recording(os.urandom(size))
    call_id = new_call(fake_twilio, recording)
    tracemalloc.start()
    try:
        actors.stage.ingest_recording(call_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert local_store.size(keys.recording_key(call_id)) == size
    assert peak < size // 4, f"peak {peak} bytes for a {size}-byte recording"


# -- policy, unit ----------------------------------------------------------------


def test_transient_failures_wait_1_2_4_seconds_then_give_up(pg_db, stub_broker, actors, monkeypatch):
    message = DOWNLOAD_RECORDING.message(call_id="CA" + "1" * 32)
    monkeypatch.setattr(actors.stage, "_current_message", lambda: message)
    decisions = [actors.stage._failed_attempt("CA" + "1" * 32, ConnectionError("reset")) for _ in range(4)]
    assert [d.delay for d in decisions[:3]] == [1000, 2000, 4000]
    assert all(isinstance(d, dramatiq.Retry) for d in decisions[:3])
    assert isinstance(decisions[3], PermanentError) and "after 4 attempts: reset" in str(decisions[3])


@pytest.mark.parametrize(
    "waited, window, delay",
    [(0.2, 120, 1000), (3, 120, 3000), (60, 120, 15000), (119.7, 120, 1000), (118, 120, 2000), (120, 120, None), (5, 0, None)],
)
def test_404_waits_grow_with_the_time_waited_inside_the_window(actors, waited, window, delay):
    assert actors.stage.not_ready_delay_ms(waited, window) == delay


def test_the_body_is_copied_whole_and_checked_against_its_length_and_the_limit():
    from services.ingest.download import copy_body
    from shared.errors import TransientError

    out = io.BytesIO()
    assert copy_body(iter([b"abc", b"defg", b"h"]), out, expected=8, max_bytes=100) == 8
    assert out.getvalue() == b"abcdefgh"
    with pytest.raises(TransientError, match="ended after 4 of 8 bytes"):
        copy_body(iter([b"abcd"]), io.BytesIO(), expected=8, max_bytes=100)
    with pytest.raises(TransientError, match="more than the 8 bytes"):
        copy_body(iter([b"abcd", b"efghi"]), io.BytesIO(), expected=8, max_bytes=100)
    with pytest.raises(PermanentError, match="empty recording"):
        copy_body(iter([]), io.BytesIO(), expected=None, max_bytes=100)


def test_a_body_without_a_length_stops_at_the_limit_before_writing_past_it():
    """No Content-Length to refuse early: the limit is enforced as the bytes flow."""
    from services.ingest.download import copy_body

    out = io.BytesIO()
    with pytest.raises(PermanentError, match="RECORDING_MAX_BYTES"):
        copy_body((b"a" * 60 for _ in range(3)), out, expected=None, max_bytes=100)
    assert len(out.getvalue()) == 60


# -- where a download may be redirected, and 429 (issue 25) ----------------------------------------------
#
# Twilio answers a recording's URL with a 302 to its media storage on another
# host. These prove what download.py's docstring claims: redirects are followed
# over https only, the Basic credentials are dropped when the host changes,
# redirects to private addresses are refused unless the host is allow-listed,
# and 429 is retried.


def test_a_redirect_to_another_allowed_host_is_followed_without_the_credentials(worker, stub_broker, fake_twilio, s3, ingest_env):
    ingest_env(TWILIO_RECORDING_HOSTS=f"{fake_twilio.host},{fake_twilio.other_host}")
    body = os.urandom(40_000)
    recording = fake_twilio.add_recording(body, script=["redirect-other-host"])
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).stage == Stage.AUDIO
    assert stored(s3, call_id) == body
    first, media = fake_twilio.requests
    assert (first.behaviour, media.behaviour) == ("redirect-other-host", "media")
    assert first.sent_credentials and first.authorized
    assert not media.sent_credentials, "the account's credentials went to another host"


def test_a_redirect_to_the_same_host_keeps_the_credentials(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"mp3" * 100, script=["redirect"])
    assert run(stub_broker, worker, new_call(fake_twilio, recording)).stage == Stage.AUDIO
    first, media = fake_twilio.requests
    assert first.sent_credentials and media.sent_credentials


def test_a_redirect_to_plain_http_is_refused(worker, stub_broker, fake_twilio, s3):
    recording = fake_twilio.add_recording(b"mp3" * 100, script=["redirect-http"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert_failed(call, "non-https")
    assert [r.behaviour for r in fake_twilio.requests] == ["redirect-http"]  # the http URL was never asked
    assert stored(s3, call_id) is None


def test_a_redirect_to_a_loopback_host_off_the_allow_list_is_refused(worker, stub_broker, fake_twilio, s3):
    # localhost is this very server, but not allow-listed: a private address, so refused.
    recording = fake_twilio.add_recording(b"mp3" * 100, script=["redirect-other-host"])
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert_failed(call, "private", "localhost")
    assert [r.behaviour for r in fake_twilio.requests] == ["redirect-other-host"]
    assert stored(s3, call_id) is None


@pytest.mark.parametrize(
    "target",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://10.0.0.1/x",
        "https://192.168.1.1/x",
        "https://[::1]/x",
        "https://0.0.0.0/x",
    ],
)
def test_a_redirect_to_a_private_or_metadata_address_is_refused(worker, stub_broker, fake_twilio, s3, target):
    fake_twilio.redirect_target = target
    recording = fake_twilio.add_recording(b"mp3" * 100, script=["redirect-to"])
    call = run(stub_broker, worker, new_call(fake_twilio, recording))
    assert_failed(call, "private")


def test_429_is_retried(worker, stub_broker, fake_twilio, s3):
    body = os.urandom(10_000)
    recording = fake_twilio.add_recording(body, script=["429", "429", "ok"])
    call_id = new_call(fake_twilio, recording)
    assert run(stub_broker, worker, call_id).stage == Stage.AUDIO
    assert stored(s3, call_id) == body
    assert [r.behaviour for r in fake_twilio.media_gets(recording)] == ["429", "429", "ok"]


@pytest.mark.parametrize(
    "address, private",
    [
        ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.0.1", True),
        ("169.254.169.254", True), ("::1", True), ("fd00:ec2::254", True), ("fe80::1", True),
        ("0.0.0.0", True), ("::ffff:127.0.0.1", True), ("100.64.0.1", True),
        ("54.172.60.1", False), ("2600:1f18::1", False),
    ],
)
def test_which_addresses_count_as_private(address, private):
    assert download.is_private_address(address) is private


def test_a_host_that_resolves_to_a_private_address_is_refused(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(download.socket, "getaddrinfo", resolve)
    with pytest.raises(download.PermanentError, match="private"):
        download.check_destination("media.example.com", 443, allowed=frozenset())
    download.check_destination("media.example.com", 443, allowed=frozenset({("media.example.com", 443)}))


# -- the store or the disk away (#25 D4, D5) -----------------------------------------


@pytest.fixture
def fast_outage(monkeypatch):
    from shared import outage

    monkeypatch.setattr(outage, "FIRST_DELAY_MS", 20)
    monkeypatch.setattr(outage, "MAX_DELAY_MS", 50)


def _refusing_uploads(s3, monkeypatch, times: int) -> list[str]:
    """The store refuses the next ``times`` uploads as an unreachable S3 does; the keys it was asked for."""
    from shared.errors import StorageUnavailable
    from shared.storage import get_storage

    store = get_storage()  # the one the actor uses (settings changed since the fixture made ``s3``)
    asked: list[str] = []
    upload = store.upload_file

    def refusing(path, key, content_type=None):
        asked.append(key)
        if len(asked) <= times:
            raise StorageUnavailable(f"the object store failed the upload of {key} (EndpointConnectionError: refused)")
        return upload(path, key, content_type)

    monkeypatch.setattr(store, "upload_file", refusing)
    return asked


def test_a_store_outage_longer_than_the_download_budget_is_waited_out(worker, stub_broker, fake_twilio, s3, monkeypatch, fast_outage):
    body = os.urandom(20_000)
    recording = fake_twilio.add_recording(body)
    call_id = new_call(fake_twilio, recording)
    asked = _refusing_uploads(s3, monkeypatch, 6)  # twice the three retries a download gets
    call = run(stub_broker, worker, call_id)
    assert len(asked) == 7 and stored(s3, call_id) == body
    assert (call.stage, call.video_status) == (Stage.AUDIO, VideoStatus.PENDING)


def test_a_store_outage_past_the_tolerance_fails_the_call_blaming_the_store(
    worker, stub_broker, fake_twilio, s3, monkeypatch, fast_outage, ingest_env
):
    ingest_env(STORAGE_OUTAGE_TOLERANCE="1")
    recording = fake_twilio.add_recording(os.urandom(20_000))
    call_id = new_call(fake_twilio, recording)
    _refusing_uploads(s3, monkeypatch, 10_000)
    call = run(stub_broker, worker, call_id)
    assert_failed(call, f"the object store failed the upload of {keys.recording_key(call_id)}", "STORAGE_OUTAGE_TOLERANCE=1")
    assert "download" not in call.video_error_message.split("(")[0]  # Twilio's download went fine


def test_a_recording_larger_than_the_free_space_is_refused_before_it_is_written(
    worker, stub_broker, fake_twilio, s3, monkeypatch, fast_outage, ingest_env
):
    from shared import disk

    ingest_env(STORAGE_OUTAGE_TOLERANCE="1")
    monkeypatch.setattr(disk, "free_bytes", lambda folder: 1_000_000)
    recording = fake_twilio.add_recording(os.urandom(20_000))
    call_id = new_call(fake_twilio, recording)
    call = run(stub_broker, worker, call_id)
    assert_failed(call, "no space left in TMP_DIR (", "1.0 MB free, about 0.0 MB needed")
    assert len(fake_twilio.media_gets(recording)) >= 2  # retried, with backoff
