import os
import urllib.request
import uuid

import pytest

from shared import keys
from shared import storage as storage_module
from shared.storage import LocalStorage, ObjectNotFound, check_key
from tests.support.s3_proxy import FaultyS3Proxy

CALL = "CA" + "0123456789abcdef" * 2


def test_keys_are_exactly_the_plans():
    assert keys.recording_key(CALL) == f"recordings/{CALL}.mp3"
    assert keys.side_audio_key(CALL, "caller") == f"audio/{CALL}-caller.mp3"
    assert keys.side_audio_key(CALL, "callee") == f"audio/{CALL}-callee.mp3"
    assert keys.video_key(CALL) == f"videos/{CALL}.mp4"
    assert keys.segment_video_key(CALL, "callee", 3) == f"videos/{CALL}-callee-003.mp4"


@pytest.mark.parametrize("bad", ["../etc/passwd", "CA123", "ca" + "0" * 32, "CA" + "0" * 31 + "/", "", None, 42, "CA" + "g" * 32])
def test_call_ids_are_validated_before_becoming_keys(bad):
    with pytest.raises(keys.InvalidCallId):
        keys.recording_key(bad)


def test_new_call_ids_are_valid():
    assert keys.validate_call_id(keys.new_call_id())


@pytest.mark.parametrize("bad", ["/abs", "a/../b", "a//b", "", "a\\b", "./a"])
def test_keys_cannot_escape(bad):
    with pytest.raises(ValueError):
        check_key(bad)


def test_s3_roundtrip_presigned_and_missing(s3, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"hello callreel")
    s3.upload_file(src, keys.recording_key(CALL), "audio/mpeg")
    assert s3.exists(keys.recording_key(CALL)) and s3.size(keys.recording_key(CALL)) == 14
    out = tmp_path / "out.bin"
    s3.download_file(keys.recording_key(CALL), out)
    assert out.read_bytes() == b"hello callreel"
    url = s3.presigned_url(keys.recording_key(CALL), expires=60)
    assert "X-Amz-Signature" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"hello callreel"
        assert response.headers["Content-Type"] == "audio/mpeg"
    assert s3.object_url(keys.recording_key(CALL)).endswith(f"/{s3.bucket}/recordings/{CALL}.mp3")
    with pytest.raises(ObjectNotFound):
        s3.download_file(keys.video_key(CALL), tmp_path / "none")
    assert not s3.exists(keys.video_key(CALL))
    s3.delete(keys.recording_key(CALL))
    assert not s3.exists(keys.recording_key(CALL))


MIB = 1024 * 1024


def _patterned(path, size: int) -> None:
    """A file whose every MiB is one byte value (its index mod 251), so a misplaced part shows."""
    with open(path, "wb") as out:
        for mib in range(size // MIB):
            out.write(bytes([mib % 251]) * MIB)
        out.write(bytes([size // MIB % 251]) * (size % MIB))


def test_s3_multipart_upload_larger_than_a_part(s3, tmp_path):
    size = 12 * MIB + 123  # the part size is 8 MiB: this takes two parts
    key = keys.video_key(CALL)
    _patterned(tmp_path / "video.mp4", size)
    s3.upload_file(tmp_path / "video.mp4", key, "video/mp4")
    assert s3.size(key) == size
    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-2"), "expected a two-part multipart upload"
    out = tmp_path / "big"
    s3.download_file(key, out)
    with open(out, "rb") as f:
        f.seek(9 * MIB)
        assert f.read(1) == bytes([9])


def test_s3_failed_multipart_upload_leaves_nothing(s3_server, settings_env, tmp_path):
    from shared.storage import get_storage

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    proxy = FaultyS3Proxy(s3_server.url).start()
    try:
        settings_env(**{**s3_server.env(bucket), "S3_ENDPOINT_URL": proxy.url, "S3_MAX_ATTEMPTS": "2"})
        store = get_storage()
        store.ensure_bucket()
        proxy.refuse_for(60, lambda r: r.method == "PUT" and "partNumber=2" in r.query)
        _patterned(tmp_path / "video.mp4", 12 * MIB)
        key = keys.video_key(CALL)
        with pytest.raises(Exception):
            store.upload_file(tmp_path / "video.mp4", key, "video/mp4")
        assert any(r.refused for r in proxy.requests), "the second part was never refused"
        proxy.clear()
        assert not store.exists(key)
        assert store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    finally:
        proxy.stop()


def test_local_storage_same_interface(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "objects")
    (tmp_path / "audio.mp3").write_bytes(b"abc")
    store.upload_file(tmp_path / "audio.mp3", keys.side_audio_key(CALL, "caller"))
    assert store.size(keys.side_audio_key(CALL, "caller")) == 3
    assert store.presigned_url(keys.side_audio_key(CALL, "caller")).startswith("file://")

    def copy_then_fail(src, out, length=0):
        out.write(src.read(MIB))
        raise OSError("disk gone mid-copy")

    monkeypatch.setattr(storage_module.shutil, "copyfileobj", copy_then_fail)
    _patterned(tmp_path / "video.mp4", 3 * MIB)
    with pytest.raises(OSError, match="mid-copy"):
        store.upload_file(tmp_path / "video.mp4", keys.video_key(CALL))
    assert not store.exists(keys.video_key(CALL))
    assert os.listdir(tmp_path / "objects" / "videos") == []  # no temp file left behind
    with pytest.raises(ObjectNotFound):
        store.download_file(keys.video_key(CALL), tmp_path / "x")


EXPIRE_LOGS = {"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}


def test_the_abort_rule_keeps_the_buckets_other_rules(s3):
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": [EXPIRE_LOGS]})
    assert s3.ensure_abort_rule() == storage_module.ADDED
    assert s3.ensure_abort_rule() == storage_module.PRESENT  # idempotent
    rules = {rule["ID"]: rule for rule in s3.client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]}
    assert set(rules) == {"expire-logs", storage_module.ABORT_RULE_ID}
    assert rules["expire-logs"]["Expiration"] == {"Days": 30}
    assert rules[storage_module.ABORT_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_an_operators_own_abort_rule_is_enough(s3):
    own = {"ID": "abort-after-a-day", "Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": [own]})
    assert s3.ensure_abort_rule() == storage_module.PRESENT
    (rule,) = s3.client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    assert rule["ID"] == "abort-after-a-day"


def test_an_abort_rule_for_one_prefix_is_not_enough(s3):
    logs_only = {"ID": "abort-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": [logs_only]})
    assert s3.ensure_abort_rule() == storage_module.ADDED
    ids = {rule["ID"] for rule in s3.client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]}
    assert ids == {"abort-logs", storage_module.ABORT_RULE_ID}


def test_a_server_that_refuses_the_rule_is_told_apart(s3, monkeypatch):
    """MinIO answers MalformedXML to an AbortIncompleteMultipartUpload rule (it purges such uploads itself)."""
    from botocore.exceptions import ClientError

    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "MalformedXML", "Message": "The XML you provided was not well-formed"}}, "PutBucketLifecycleConfiguration")

    monkeypatch.setattr(s3.client, "put_bucket_lifecycle_configuration", refuse)
    assert s3.ensure_abort_rule() == storage_module.UNSUPPORTED


def test_a_server_that_drops_the_rule_is_told_apart(s3, monkeypatch):
    """Some MinIO releases accept the rule and keep it without its abort action."""
    monkeypatch.setattr(s3.client, "put_bucket_lifecycle_configuration", lambda **kwargs: {})
    assert s3.ensure_abort_rule() == storage_module.UNSUPPORTED


def test_other_lifecycle_errors_are_not_hidden(s3, monkeypatch):
    from botocore.exceptions import ClientError

    def deny(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutBucketLifecycleConfiguration")

    monkeypatch.setattr(s3.client, "put_bucket_lifecycle_configuration", deny)
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.ensure_abort_rule()


def test_presigned_urls_are_signed_for_this_object_and_expire(s3, s3_server, settings_env):
    """moto's server ignores signatures and expiry: check them as S3 and MinIO would (tests/support/sigv4.py)."""
    import datetime as dt

    from tests.support.sigv4 import BadPresignedURL, verify

    env = s3_server.env(s3.bucket)
    creds = {"access_key": env["AWS_ACCESS_KEY_ID"], "secret_key": env["AWS_SECRET_ACCESS_KEY"], "region": env["AWS_REGION"]}
    settings_env(PRESIGNED_URL_EXPIRY="900")
    from shared.storage import get_storage

    store = get_storage()
    key = keys.recording_key(CALL)
    url = store.presigned_url(key)
    params = verify(url, **creds)
    assert params["X-Amz-Expires"] == "900"  # PRESIGNED_URL_EXPIRY, unless the caller asks for another
    assert params["X-Amz-Credential"].startswith(f"{creds['access_key']}/") and "/us-east-1/s3/aws4_request" in params["X-Amz-Credential"]
    assert verify(store.presigned_url(key, expires=60), **creds)["X-Amz-Expires"] == "60"
    signed_at = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    verify(url, **creds, now=signed_at + dt.timedelta(seconds=899))
    with pytest.raises(BadPresignedURL, match="expired"):
        verify(url, **creds, now=signed_at + dt.timedelta(seconds=901))
    with pytest.raises(BadPresignedURL, match="SignatureDoesNotMatch"):  # another object with this URL's signature
        verify(url.replace(CALL, "CA" + "0" * 32), **creds)
    with pytest.raises(BadPresignedURL, match="SignatureDoesNotMatch"):  # a longer life than was signed
        verify(url.replace("X-Amz-Expires=900", "X-Amz-Expires=9000"), **creds)
    with pytest.raises(BadPresignedURL, match="SignatureDoesNotMatch"):
        verify(url, **{**creds, "secret_key": "another"})
    with pytest.raises(BadPresignedURL, match="credential"):
        verify(url, **{**creds, "region": "eu-west-1"})
