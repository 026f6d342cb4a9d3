"""The smoke test of the no-container topology, through deploy/stack.py exactly as an operator
starts it: gunicorn (2 processes) + 2 `rundramatiq` workers + PostgreSQL (a fresh database) +
a private Redis + moto's S3 server."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
import redis
from psycopg import sql

from tests import services
from tests.ops.conftest import samples, value
from tests.photos import photo

pytestmark = [pytest.mark.services, pytest.mark.slow]

MAX_TOKEN_BYTES = 4096  # the settings default, which the stack runs with


def http(
    method: str, url: str, body: Any = None, token: str = "", timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_until(
    check: Callable[[], Any], what: str, timeout: float, describe: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s\n{describe()}")
        time.sleep(0.25)


@contextmanager
def fresh_database() -> Iterator[str]:
    base = services.postgres_url()
    if base is None:
        services.missing_service("PostgreSQL (TEST_DATABASE_URL or 127.0.0.1:5432)")
    assert base is not None
    name = f"imageservice_smoke_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = base.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class RunningStack:
    def __init__(self, tmp: Path, database_url: str, redis_url: str) -> None:
        self.tmp = tmp
        self.state_file = tmp / "state.json"
        self.logs = tmp / "logs"
        self.port = services.free_port()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp),
            "MODERATION_BACKEND": "moderation.backends.TestBackend",
            "READINESS_TIMEOUT_SECONDS": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(services.repo_root() / "deploy" / "stack.py"),
                "--port",
                str(self.port),
                "--database-url",
                database_url,
                "--redis-url",
                redis_url,
                "--var-dir",
                str(tmp / "var"),
                "--log-dir",
                str(self.logs),
                "--state-file",
                str(self.state_file),
                "--shutdown-timeout",
                "15",
            ],
            env=env,
            stdout=(tmp / "stack.out").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.state: dict[str, Any] = {}

    def wait_up(self) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"deploy/stack.py exited with {self.process.returncode}\n{self.tail()}")
            return self.state_file.exists()

        wait_until(up, "the stack was not up", 150, self.tail)
        self.state = json.loads(self.state_file.read_text())

    def tail(self) -> str:
        parts = []
        for path in [self.tmp / "stack.out", *sorted(self.logs.glob("*.log"))]:
            if path.exists():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> int | None:
        """SIGTERM as an operator's Ctrl-C would; returns the exit status (None: had to kill)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
                return None
        return self.process.returncode

    def kill_leftovers(self) -> list[int]:
        """Kill (by pid, group by group) whatever the stack started and left running."""
        left = []
        for pid in self.state.get("pids", {}).values():
            try:
                os.killpg(pid, signal.SIGKILL)
                left.append(pid)
            except ProcessLookupError:
                pass
        return left


def upload_token(stack: RunningStack, **claims: Any) -> str:
    key = (stack.tmp / "var" / "keys" / "pinster_private.pem").read_text()
    now = int(time.time())
    payload = {
        "iss": "http://127.0.0.1:3000",
        "aud": stack.state["web"],
        "nbf": now - 1,
        "exp": now + 600,
        "imageable_type": "Pin",
        "imageable_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256")


def scrape(url: str, token: str = "") -> str:
    status, _, body = http("GET", url, token=token)
    assert status == 200, body[:500]
    return body.decode()


def test_an_upload_is_published_by_the_topology_and_readyz_turns_red_without_redis(
    tmp_path: Path,
) -> None:
    for binary in ("redis-server", "moto_server"):
        beside_python = (Path(sys.executable).parent / binary).exists() and not services.NO_SERVICES
        if services.installed(binary) is None and not beside_python:
            services.missing_service(f"{binary} is not installed")
    with fresh_database() as database_url, services.redis_server() as redis_url:
        stack = RunningStack(tmp_path, database_url, redis_url)
        try:
            stack.wait_up()
            web = stack.state["web"]

            status, _, body = http("GET", f"{web}/readyz")
            assert status == 200, body
            checks = json.loads(body)["checks"]
            assert checks["broker"] == {"ok": True, "detail": "redis"}
            assert checks["database"] == {"ok": True, "detail": "postgresql"}

            # A token as long as the settings allow passes gunicorn's header limits.
            pad = (MAX_TOKEN_BYTES - len(upload_token(stack))) * 3 // 4 - 16
            token = upload_token(stack, pad="x" * pad)
            assert MAX_TOKEN_BYTES - 100 < len(token) <= MAX_TOKEN_BYTES
            # Over nginx's 1 MiB client_body_buffer_size: buffered in a temporary file, which
            # nginx's unprivileged workers must be able to write (a 500 before that was fixed).
            jpeg = photo(2000, 1500, quality=95)
            assert len(jpeg) > 1024 * 1024
            image = {"data": {"image": base64.b64encode(jpeg).decode(), "name": "Smoke test"}}
            status, headers, body = http("POST", f"{web}/api/v1/images/", image, token, 60)
            assert status == 202, body
            request_id = headers["X-Request-ID"]
            image_url = json.loads(body)["status_url"].replace(
                "http://127.0.0.1:" + str(stack.port), web
            )

            polls = 0

            def published() -> bool:
                nonlocal polls
                polls += 1
                status, _, body = http("GET", image_url, token=token)
                assert status == 200, body
                state = json.loads(body)["state"]
                assert state not in {"rejected", "failed", "in_review"}, body
                return state == "published"

            wait_until(published, "the image was not published", 90, stack.tail)

            # The request id followed the image from the upload through every task.
            task_lines = [
                json.loads(line)
                for path in stack.logs.glob("worker-*.log")
                for line in path.read_text().splitlines()
                if line.startswith("{") and '"logger": "infra.metrics"' in line
            ]
            mine = {e["actor"] for e in task_lines if e["request_id"] == request_id}
            assert {"moderate_image", "make_thumbnails"} <= mine, stack.tail()

            # Every log line is one JSON object, but rundramatiq's few start-up lines on stdout.
            for path in stack.logs.glob("*.log"):
                if path.name not in ("s3.log", "nginx.log"):  # nginx's error log is its own
                    for line in path.read_text().splitlines():
                        if not line.startswith(" * "):
                            assert isinstance(json.loads(line), dict), (path.name, line)

            # Web metrics add up over both gunicorn processes; task metrics over both workers.
            metrics = scrape(f"{web}/metrics", stack.state["metrics_token"])
            assert value(metrics, "imageservice_uploads_total", result="created") == 1
            detail = {"view": "image-detail", "method": "GET"}
            assert (
                value(
                    metrics,
                    "django_http_responses_total_by_status_view_method_total",
                    status="200",
                    **detail,
                )
                == polls
            )
            workers = [scrape(url) for url in stack.state["workers"]]
            for actor in ("moderate_image", "make_thumbnails"):
                done = sum(
                    value(
                        w, "imageservice_tasks_total", actor=actor, queue=queue, outcome="succeeded"
                    )
                    for w in workers
                    for queue in ("moderation", "thumbnails")
                )
                assert done == 1, actor
            # The pipeline gauges, read from Redis and PostgreSQL at scrape time.
            depth = ("imageservice_queue_messages", (("kind", "ready"), ("queue", "notifications")))
            assert depth in samples(workers[0])
            assert value(workers[0], "imageservice_metrics_source_up", source="database") == 1
            assert value(metrics, "imageservice_metrics_source_up", source="broker") == 1

            # Redis goes away: /readyz turns red on the broker alone, quickly; /healthz stays up.
            redis.Redis.from_url(redis_url).shutdown(nosave=True)
            started = time.monotonic()
            status, _, body = http("GET", f"{web}/readyz")
            assert time.monotonic() - started < 5
            assert status == 503, body
            checks = json.loads(body)["checks"]
            assert checks["broker"]["ok"] is False
            assert checks["database"]["ok"] is True
            assert checks["storage"]["ok"] is True
            assert http("GET", f"{web}/healthz")[0] == 200
        finally:
            exit_status = stack.stop()
            leftovers = stack.kill_leftovers()
        assert exit_status == 0, stack.tail()
        assert leftovers == [], f"processes left running after the stack stopped: {leftovers}"
