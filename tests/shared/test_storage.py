import io
import os
import urllib.request

import pytest

from shared import keys
from shared.storage import LocalStorage, ObjectNotFound, check_key

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


class ChunkedStream(io.RawIOBase):
    """A non-seekable stream, like an HTTP body, yielding ``total`` bytes."""

    def __init__(self, total: int, fail_at: int | None = None) -> None:
        self.remaining, self.sent, self.fail_at = total, 0, fail_at

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.fail_at is not None and self.sent >= self.fail_at:
            raise ConnectionError("connection reset mid-body")
        n = min(len(buffer), self.remaining, 256 * 1024)
        buffer[:n] = bytes([self.sent // (1024 * 1024) % 251]) * n
        self.remaining -= n
        self.sent += n
        return n


def test_s3_streamed_multipart_upload_larger_than_a_part(s3, tmp_path):
    size = 12 * 1024 * 1024 + 123  # the part size is 8 MiB: this takes two parts
    key = keys.video_key(CALL)
    s3.upload_fileobj(ChunkedStream(size), key, "video/mp4")
    assert s3.size(key) == size
    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-2"), "expected a two-part multipart upload"
    out = tmp_path / "big"
    s3.download_file(key, out)
    with open(out, "rb") as f:
        f.seek(9 * 1024 * 1024)
        assert f.read(1) == bytes([9])


def test_s3_failed_stream_leaves_nothing(s3):
    key = keys.recording_key(CALL)
    with pytest.raises(Exception):
        s3.upload_fileobj(ChunkedStream(20 * 1024 * 1024, fail_at=9 * 1024 * 1024), key)
    assert not s3.exists(key)
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_local_storage_same_interface(tmp_path):
    store = LocalStorage(tmp_path / "objects")
    store.upload_fileobj(io.BytesIO(b"abc"), keys.side_audio_key(CALL, "caller"))
    assert store.size(keys.side_audio_key(CALL, "caller")) == 3
    assert store.presigned_url(keys.side_audio_key(CALL, "caller")).startswith("file://")
    with pytest.raises(ConnectionError):
        store.upload_fileobj(ChunkedStream(10 * 1024 * 1024, fail_at=1024 * 1024), keys.video_key(CALL))
    assert not store.exists(keys.video_key(CALL))
    assert os.listdir(tmp_path / "objects" / "videos") == []  # no temp file left behind
    with pytest.raises(ObjectNotFound):
        store.download_file(keys.video_key(CALL), tmp_path / "x")
