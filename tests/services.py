"""Real local services for the tests: PostgreSQL, Redis, an S3-compatible server (moto's).

A test that needs a service that is not there is skipped on a developer's machine and fails
under CI (CI=true), so a green CI run always means the integration tests really ran.
TEST_NO_SERVICES=1 makes every one of them look absent, to check on a machine that has them
that the fast lane (`-m "not services and not slow and not browser"`) passes on one that has
none. moto's S3 server is not a service here: it runs on a thread inside the test process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NO_SERVICES = os.environ.get("TEST_NO_SERVICES", "").lower() in {"1", "true", "yes"}
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
TEST_BUCKET = "imageservice-test"


def missing_service(reason: str) -> None:
    """Skip for a missing service, or fail under CI where every service must be there."""
    if IN_CI:
        pytest.fail(f"service missing under CI: {reason}", pytrace=False)
    pytest.skip(f"service missing: {reason}")


def installed(binary: str) -> str | None:
    """The path of a server's program, or None when it is missing (or TEST_NO_SERVICES is set)."""
    return None if NO_SERVICES else shutil.which(binary)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port, 0.2):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port} did not open within {timeout}s")
        time.sleep(0.05)


@cache
def postgres_url() -> str | None:
    """TEST_DATABASE_URL, or the local server; None (SQLite) when none answers."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_POSTGRES_URL)
    if url.startswith("sqlite") or NO_SERVICES:
        return None
    try:
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=2):
            return url
    except Exception:
        if IN_CI:
            raise RuntimeError(f"CI needs PostgreSQL at {url}") from None
        return None


@cache
def s3_endpoint() -> str:
    """An S3-compatible server (moto) on loopback for this test process, with the test bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3_client(endpoint).create_bucket(Bucket=TEST_BUCKET)
    return endpoint


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free port (so tests may stop or flush it); yields its URL."""
    binary = installed("redis-server")
    if binary is None:
        url = "" if NO_SERVICES else os.environ.get("TEST_REDIS_URL", "")
        if not url:
            missing_service("redis-server is not installed and TEST_REDIS_URL is not set")
        yield url
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@contextmanager
def broker_in_use(new_broker):  # type: ignore[no-untyped-def]
    """Make `new_broker` the global Dramatiq broker, with every declared actor moved onto it
    (same middleware as the configured one); restore the previous broker afterwards."""
    import dramatiq

    old = dramatiq.get_broker()
    for middleware in old.middleware:
        if type(middleware) not in {type(m) for m in new_broker.middleware}:
            new_broker.add_middleware(middleware)
    actors = [old.get_actor(name) for name in old.get_declared_actors()]
    dramatiq.set_broker(new_broker)
    for actor in actors:
        new_broker.declare_actor(actor)
        actor.broker = new_broker
    try:
        yield new_broker
    finally:
        for actor in actors:
            actor.broker = old
        dramatiq.set_broker(old)
        new_broker.close()


def rabbitmq_running() -> bool:
    """The local RabbitMQ answers on 5672 and rabbitmqctl is there to make vhosts."""
    return installed("rabbitmqctl") is not None and port_open("127.0.0.1", 5672)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh vhost on the local RabbitMQ (guest/guest), so concurrent runs never share queues;
    yields its amqp:// URL."""
    import uuid

    if not rabbitmq_running():
        missing_service("RabbitMQ on 127.0.0.1:5672 with rabbitmqctl")
    vhost = f"imageservice-test-{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60)
