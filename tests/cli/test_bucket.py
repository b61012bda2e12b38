"""``callreel bucket``: the bucket exists and drops multipart uploads a killed worker left unfinished."""

import subprocess
import sys
import uuid
from pathlib import Path

import boto3

from shared.storage import ABORT_RULE_ID
from tests.support.env import process_env
from tests.support.services import free_port

CLI = Path(sys.executable).with_name("callreel")


def run(*args, env):
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=120)


def test_bucket_creates_the_bucket_and_its_abort_rule_once(s3_server, tmp_path):
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    env = process_env(**s3_server.env(bucket))
    first = run("bucket", env=env)
    assert first.returncode == 0, first.stderr
    assert f"bucket {bucket}: now aborts multipart uploads left unfinished for a day" in first.stdout
    second = run("bucket", env=env)
    assert second.returncode == 0 and "already aborts" in second.stdout, second.stdout + second.stderr

    client = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    (rule,) = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["ID"] == ABORT_RULE_ID and rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_bucket_on_local_storage_has_nothing_to_do(tmp_path):
    env = process_env(LOCAL_STORAGE_DIR=tmp_path / "objects")
    result = run("bucket", env=env)
    assert result.returncode == 0, result.stderr
    assert "local folder" in result.stdout


def test_bucket_says_why_it_cannot_reach_the_store(tmp_path):
    env = process_env(
        S3_BUCKET="nowhere", S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", S3_MAX_ATTEMPTS="1",
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
    )
    result = run("bucket", env=env)
    assert result.returncode == 1
    assert "callreel: cannot set up bucket nowhere:" in result.stderr and "Traceback" not in result.stderr
