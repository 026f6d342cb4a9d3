"""Recovery after processes are killed by the OS, timed: the worker instances of the real
topology (deploy/stack.py's supervisor starts them again), and the embedded server (gunicorn
with the in-process worker, started again by hand as systemd or an operator would). Leases are
short (LEASE_SECONDS) and renewed while a task runs, and the embedded start-up takes back
every lease at once, so nothing waits for a dead process's lease to run out for minutes."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings

from tests.faults.services import wait_until
from tests.faults.topology import FINAL
from tests.hostile import tokens
from tests.photos import photo
from tests.pinster import PinsterApi
from tests.services import free_port, port_open, postgres_url, repo_root

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Large enough that publishing (5 sizes x 2 formats from a 6 MP decode) takes a while.
BIG = (3000, 2000)


def big_photos(count: int, seed: int) -> list[bytes]:
    subjects = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
    return [
        photo(*BIG, quality=60 + seed + n, subject=subjects[n % len(subjects)])
        for n in range(count)
    ]


def states(query: Any, ids: list[str]) -> dict[str, str]:
    rows = query("SELECT id::text, state FROM uploads_image WHERE id::text = ANY(%s)", ids)
    return {image_id: state for image_id, state in rows}


# --- The worker instances of the production topology --------------------------------------


def test_worker_instances_killed_mid_publishing_are_restarted_and_publish_all_within_90s(stack):
    ids = []
    for data in big_photos(6, seed=0):
        status, _, body = stack.upload(data)
        assert status == 202, body
        ids.append(body["id"])
    assert wait_until(lambda: "publishing" in states(stack.sql, ids).values(), 120), states(
        stack.sql, ids
    )
    workers = [stack.worker(1), stack.worker(2)]
    for child in workers:  # production's reconcile interval, not the fault tests' 1 s
        child.env["RECONCILE_INTERVAL_SECONDS"] = "30"
    try:
        for child in workers:
            child.kill_group()  # SIGKILL to every process of both instances
        for child in workers:
            assert child.wait(10)
        held = [i for i, s in states(stack.sql, ids).items() if s == "publishing"]
        assert held, "nothing was being published when the workers died"

        restarted_at = time.monotonic()
        assert sorted(stack.stack.supervise()) == ["worker-1", "worker-2"]
        assert stack.wait_final(ids, timeout=120) == dict.fromkeys(ids, "published")
        recovered_in = time.monotonic() - restarted_at
    finally:
        for number, child in enumerate(workers, start=1):
            child.env["RECONCILE_INTERVAL_SECONDS"] = "1"
            stack.kill_worker(number, signal.SIGTERM)
            stack.restart_worker(number)

    print(f"\nall {len(ids)} published {recovered_in:.1f} s after the workers' restart")
    assert recovered_in < 90
    for image_id in held:  # the killed attempt's image was claimed again, not redone twice
        assert stack.transitions(image_id)[-1] == ("publishing", "published")
    stack.assert_integrity()


def test_a_killed_worker_process_stops_its_instance_and_the_supervisor_starts_it_again(stack):
    child = stack.worker(1)
    others = [pid for pid in stack.worker_pids(1) if pid != child.pid]
    assert others, "the instance has no worker processes"

    for pid in others:  # the OOM killer's choice: the big worker process, not the main one
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    assert child.wait(60), "Dramatiq's main process did not exit"
    assert child.process.returncode != 0
    assert stack.stack.supervise() == ["worker-1"]
    port = stack.stack.worker_ports[0]
    assert wait_until(lambda: port_open("127.0.0.1", port), 60), stack.logs()
    status, _, body = stack.upload(photo(640, 480, quality=33))
    assert status == 202, body
    assert stack.wait_final([body["id"]]) == {body["id"]: "published"}
    stack.assert_integrity()


# --- The embedded server -----------------------------------------------------------------


class EmbeddedServer:
    """gunicorn with the in-process worker (no BROKER_URL), on PostgreSQL and local files, as
    `manage.py serve` runs it; started again after a SIGKILL like a service manager would."""

    def __init__(self, database_url: str, pinster: PinsterApi) -> None:
        self.var = Path(tempfile.mkdtemp(prefix="embedded-"))
        self.port = free_port()
        self.pinster = pinster
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
        for name in ("BROKER_URL", "CACHE_URL", "BUCKET_NAME", "AWS_S3_ENDPOINT_URL"):
            self.env.pop(name, None)
        keys = Path(settings.VAR_DIR) / "keys"
        self.env.update(
            DJANGO_SETTINGS_MODULE="imageservice.settings",
            VAR_DIR=str(self.var),
            DATABASE_URL=database_url,
            SECRET_KEY="embedded-restart-test",
            API_PUBLIC_KEY=base64.b64encode((keys / "pinster_public.pem").read_bytes()).decode(),
            PRIVATE_KEY=base64.b64encode((keys / "service_private.pem").read_bytes()).decode(),
            PINSTER_API_URL=pinster.url,
            MODERATION_BACKEND="moderation.backends.TestBackend",
            EMBEDDED_WORKER_THREADS="2",
            UPLOAD_RATE="100000/min",
            LOG_LEVEL="INFO",
        )
        self.log = (self.var / "server.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.manage("migrate", "--noinput")

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=repo_root(),
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def start(self) -> None:
        argv = [sys.executable, "-m", "gunicorn", "imageservice.wsgi", "-c", "gunicorn.conf.py"]
        argv += ["--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "8"]
        self.process = subprocess.Popen(
            argv,
            cwd=repo_root(),
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert wait_until(lambda: port_open("127.0.0.1", self.port), 60), self.logs()

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.log.close()
        shutil.rmtree(self.var, ignore_errors=True)

    def upload(self, data: bytes) -> str:
        body = json.dumps({"data": {"image": base64.b64encode(data).decode()}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {tokens.sign(iss=self.pinster.url)}")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 202
            return str(json.loads(response.read())["id"])

    def logs(self) -> str:
        return (self.var / "server.log").read_text(errors="replace")[-4000:]


@pytest.fixture
def embedded() -> Iterator[tuple[EmbeddedServer, Any]]:
    base = postgres_url()
    if not base:
        pytest.skip("needs PostgreSQL")
    name = f"embedded_{uuid.uuid4().hex[:8]}"
    admin = base.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"

    def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            return conn.execute(sql, params).fetchall()

    with PinsterApi() as pinster:
        server = EmbeddedServer(url, pinster)
        try:
            yield server, query
        finally:
            server.stop()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_embedded_server_killed_mid_publishing_publishes_all_within_45s_of_its_restart(
    embedded,
):
    server, query = embedded
    server.start()
    ids = [server.upload(data) for data in big_photos(4, seed=10)]
    assert wait_until(lambda: "publishing" in states(query, ids).values(), 120), server.logs()

    server.kill()
    held = [i for i, s in states(query, ids).items() if s not in FINAL]
    assert any(states(query, held)[i] == "publishing" for i in held)
    leases = query("SELECT max(lease_until) - now() FROM uploads_image WHERE state = 'publishing'")[
        0
    ][0]

    restarted_at = time.monotonic()
    server.start()
    done = wait_until(lambda: set(states(query, ids).values()) <= FINAL, 60, 0.5)
    recovered_in = time.monotonic() - restarted_at

    assert done, f"{states(query, ids)}\n{server.logs()}"
    assert set(states(query, ids).values()) == {"published"}
    print(
        f"\nall {len(ids)} published {recovered_in:.1f} s after the restart (lease left: {leases})"
    )
    assert recovered_in < 45
    status = subprocess.run(
        [sys.executable, "manage.py", "check_integrity"],
        cwd=repo_root(),
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stdout + status.stderr[-2000:]
