"""Real servers for tests: a PostgreSQL database, a RabbitMQ vhost and moto's S3 server, each private to one test session.

Every pytest session gets its own database and vhost, so several sessions (two
developers, CI) can run at once against the same PostgreSQL and RabbitMQ.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RABBIT_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
MANAGEMENT_URL = f"http://{RABBIT_HOST}:15672"
MANAGEMENT_CREDENTIALS = ("guest", "guest")


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def create_pg_database() -> str:
    name = f"callreel_test_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def create_vhost() -> str:
    """A fresh RabbitMQ vhost; returns the amqp URL for it.

    Through the management API when it answers (a few milliseconds), else
    ``rabbitmqctl`` (an Erlang VM started per command: seconds on a busy
    machine, and many tests take a vhost of their own).
    """
    vhost = f"callreel-test-{uuid.uuid4().hex[:10]}"
    if not _management_call("PUT", f"/api/vhosts/{vhost}") or not _management_call(
        "PUT", f"/api/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}
    ):
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True
        )
    return f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"


def delete_vhost(url: str) -> None:
    vhost = url.rsplit("/", 1)[1]
    if not _management_call("DELETE", f"/api/vhosts/{vhost}"):
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


def _management_call(method: str, path: str, **kwargs) -> bool:
    """One request to RabbitMQ's management API; False when it does not answer or refuses (then rabbitmqctl does it)."""
    import httpx

    try:
        response = httpx.request(method, MANAGEMENT_URL + path, auth=MANAGEMENT_CREDENTIALS, timeout=10, **kwargs)
    except httpx.HTTPError:
        return False
    return response.is_success


class S3Server:
    """moto's S3 server on a loopback port, a real HTTP server boto3 talks to unpatched."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }


@dataclass(frozen=True)
class PrivateStack:
    """A database, a vhost, an S3 server and a work folder of one script's own (bench/, tests/e2e/load.py)."""

    pg_url: str
    broker_url: str
    s3: S3Server
    root: Path


@contextmanager
def private_stack(prefix: str, *, keep: bool = False) -> Iterator[PrivateStack]:
    """Make a :class:`PrivateStack`, point this process's settings and database at it, and remove it all after.

    ``keep``: leave the work folder (every process's log) for a person to read.
    """
    from shared.db import database, init_database
    from shared.settings import reload_settings

    pg_url, broker_url = create_pg_database(), create_vhost()
    s3 = S3Server().start()
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.environ["DATABASE_URL"] = pg_url
        reload_settings()
        init_database(pg_url, force=True)
        yield PrivateStack(pg_url, broker_url, s3, root)
    finally:
        s3.stop()
        if database.obj is not None:
            database.close()
        drop_pg_database(pg_url)
        delete_vhost(broker_url)
        if keep:
            print(f"logs: {root / 'logs'}")
        else:
            shutil.rmtree(root, ignore_errors=True)
