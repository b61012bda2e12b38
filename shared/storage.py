"""The object store: S3 (or any S3-compatible server) in production, a folder on one machine.

Both backends have the same interface and take keys from :mod:`shared.keys`.
Uploads and downloads stream: a file of any size costs about one multipart part
of memory.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from .errors import StorageUnavailable
from .settings import Settings, get_settings

__all__ = [
    "Storage",
    "S3Storage",
    "LocalStorage",
    "ObjectNotFound",
    "get_storage",
    "reset_storage",
    "ABORT_RULE_ID",
    "ADDED",
    "PRESENT",
    "UNSUPPORTED",
]

KEY_MAX = 512
# Chunks (256 KiB each) a download may hold between the network and the disk.
# With boto3's default, 100, a worker's memory grew with the video coming down
# (the network outran the writes); 8 keeps it at a few chunks (measured:
# docs/benchmarks.md, section "Download buffers").
IO_QUEUE_CHUNKS = 8


# The lifecycle rule `callreel bucket` adds: unfinished multipart uploads go after a day.
ABORT_RULE_ID = "callreel-abort-incomplete-multipart-uploads"
ABORT_AFTER_DAYS = 1
ADDED, PRESENT, UNSUPPORTED = "added", "present", "unsupported"
# Error codes of a store that is busy or unwell, not of a bad request: another try later may pass.
UNAVAILABLE_CODES = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling", "ThrottlingException")


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: boto3's S3UploadFailedError) says the store is away or unwell."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (ConnectionError, HTTPClientError)):
            return True
        if isinstance(cause, ClientError):
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or cause.response.get("Error", {}).get("Code") in UNAVAILABLE_CODES
        cause = cause.__cause__ or cause.__context__
    return "SlowDown" in str(exc) or "ServiceUnavailable" in str(exc)


@contextmanager
def _storage_step(what: str, key: str) -> Iterator[None]:
    """An outage met by one request to the store, raised as StorageUnavailable naming the request."""
    try:
        yield
    except Exception as exc:
        if _unavailable(exc):
            raise StorageUnavailable(f"the object store failed the {what} of {key} ({exc.__class__.__name__}: {exc})") from exc
        raise


# How S3-compatible servers refuse a rule they do not implement (MinIO: MalformedXML); access
# errors are not among them: those the operator must see.
REFUSED_RULE_CODES = ("MalformedXML", "NotImplemented", "XNotImplemented", "InvalidArgument", "InvalidRequest")


class ObjectNotFound(FileNotFoundError):
    """The key does not exist in the store."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the bucket prefix or the local folder."""
    parts = key.split("/")
    if not key or len(key) > KEY_MAX or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"invalid object key {key!r}")
    return key


class Storage(Protocol):
    def upload_file(self, path: str | Path, key: str, content_type: str | None = None) -> None: ...
    def download_file(self, key: str, path: str | Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def presigned_url(self, key: str, expires: int | None = None) -> str: ...
    def object_url(self, key: str) -> str: ...


class S3Storage:
    """S3 through boto3, with boto3's standard retries on transient errors."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = settings.s3_bucket
        self.endpoint_url = settings.s3_endpoint_url or None
        self.region = settings.aws_region
        self.expiry = settings.presigned_url_expiry
        config = Config(
            retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            signature_version="s3v4",
            connect_timeout=10,
            read_timeout=60,
        )
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=settings.aws_access_key_id or None,
            aws_secret_access_key=settings.aws_secret_access_key or None,
            config=config,
        )
        part = settings.s3_part_size_mb * 1024 * 1024
        # Two parts in flight bound a transfer's memory to about two parts. Every
        # upload is from a file, which boto3 reads part by part as it sends; a
        # network body is spooled to disk first (services/ingest/download.py).
        self.transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=2, max_io_queue=IO_QUEUE_CHUNKS)

    def _extra(self, content_type: str | None) -> dict | None:
        return {"ContentType": content_type} if content_type else None

    def upload_file(self, path: str | Path, key: str, content_type: str | None = None) -> None:
        # boto3 aborts a multipart upload that fails, so no half-written object is left behind.
        with _storage_step("upload", key):
            self.client.upload_file(str(path), self.bucket, check_key(key), ExtraArgs=self._extra(content_type), Config=self.transfer)

    def download_file(self, key: str, path: str | Path) -> None:
        from botocore.exceptions import ClientError

        try:
            with _storage_step("download", key):
                self.client.download_file(self.bucket, check_key(key), str(path), Config=self.transfer)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise ObjectNotFound(key) from exc
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            with _storage_step("size lookup", key):
                return self.client.head_object(Bucket=self.bucket, Key=check_key(key))["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(key) from exc
            raise

    def delete(self, key: str) -> None:
        with _storage_step("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def presigned_url(self, key: str, expires: int | None = None) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=expires or self.expiry
        )

    def object_url(self, key: str) -> str:
        """The stable URL stored in the database (presign it to read a private bucket)."""
        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{check_key(key)}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{check_key(key)}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (local MinIO, tests)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            kwargs = {}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self.client.create_bucket(Bucket=self.bucket, **kwargs)

    def ensure_abort_rule(self) -> str:
        """Have the bucket abort multipart uploads left unfinished for ABORT_AFTER_DAYS.

        A worker killed in the middle of a multipart upload (SIGKILL, out of
        memory, a redeploy's second signal) cannot abort it: its parts stay in
        the bucket, billed and absent from every listing, until a lifecycle
        rule removes them. The bucket's other rules are kept as they are.
        Returns ADDED, PRESENT, or UNSUPPORTED for a server that refuses or
        drops the rule (MinIO does both, and purges such uploads itself after 24 h).
        """
        from botocore.exceptions import ClientError

        rules = self._lifecycle_rules()
        if any(_aborts_everywhere(rule) for rule in rules):
            return PRESENT
        rules = [rule for rule in rules if rule.get("ID") != ABORT_RULE_ID]
        rules.append(
            {
                "ID": ABORT_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS},
            }
        )
        try:
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in REFUSED_RULE_CODES:
                return UNSUPPORTED
            raise
        return ADDED if any(_aborts_everywhere(rule) for rule in self._lifecycle_rules()) else UNSUPPORTED

    def _lifecycle_rules(self) -> list[dict]:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            return []


def _aborts_everywhere(rule: dict) -> bool:
    """An enabled rule that aborts unfinished uploads under every key, within ABORT_AFTER_DAYS."""
    days = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
    scope = rule.get("Filter", {"Prefix": rule.get("Prefix", "")})
    return rule.get("Status") == "Enabled" and days is not None and days <= ABORT_AFTER_DAYS and scope in ({}, {"Prefix": ""})


class LocalStorage:
    """A folder with S3's keys as relative paths. Writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write(self, key: str, copy) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                copy(out)
            os.replace(tmp, target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageUnavailable(f"no space left in the object store's folder {self.root} (storing {key})") from exc
            raise

    def upload_file(self, path: str | Path, key: str, content_type: str | None = None) -> None:
        with open(path, "rb") as src:
            self._write(key, lambda out: shutil.copyfileobj(src, out, 1024 * 1024))

    def download_file(self, key: str, path: str | Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(source, path)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        if not self.exists(key):
            raise ObjectNotFound(key)
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, expires: int | None = None) -> str:
        return self.path(key).as_uri()

    def object_url(self, key: str) -> str:
        return self.path(key).as_uri()


_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _build() -> Storage:
    settings = get_settings()
    if settings.uses_s3:
        return S3Storage(settings)
    return LocalStorage(settings.effective_local_storage_dir)


def get_storage() -> Storage:
    """The configured store, built once per process."""
    with _lock:
        return _build()


def reset_storage() -> None:
    """Forget the built store (after settings change: tests, CLI)."""
    with _lock:
        _build.cache_clear()
