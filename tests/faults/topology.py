"""The production topology on loopback for fault tests, started with the operators' own
deploy/stack.py (gunicorn + 2 `rundramatiq` workers), against private servers a test may break:
a PostgreSQL cluster of its own, a Redis of its own, moto's S3 behind a cuttable proxy, a fake
Rekognition (the moderation backend) and a stand-in PinsterApi.

deploy/stack.py's `main()` stops the whole stack when one process dies; a fault test wants the
opposite (kill a worker, watch the rest cope), so it drives the `Stack` object directly.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
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
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from django.conf import settings

from tests.faults.services import MotoServer, PrivatePostgres, PrivateRedis, TcpProxy, wait_until
from tests.hostile import tokens
from tests.moderation.fake_rekognition import FakeRekognition, fake_rekognition
from tests.pinster import PinsterApi
from tests.services import port_open, repo_root, s3_client

BUCKET = "imageservice-faults"
STALE_AFTER_SECONDS = 5
FINAL = {"published", "rejected", "taken_down", "failed"}


def stack_module() -> ModuleType:
    path = repo_root() / "deploy" / "stack.py"
    spec = importlib.util.spec_from_file_location("deploy_stack", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _key(name: str) -> str:
    return base64.b64encode((Path(settings.VAR_DIR) / "keys" / name).read_bytes()).decode()


class Topology:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="faults-stack-"))
        self.exits = contextlib.ExitStack()
        self.exits.callback(shutil.rmtree, self.root, ignore_errors=True)
        try:
            self._start()
        except BaseException:
            self.exits.close()  # whatever did start is stopped again
            raise

    def _start(self) -> None:
        self.pg = PrivatePostgres().create()
        self.exits.callback(self.pg.destroy)
        self.redis = PrivateRedis().start()
        self.exits.callback(self.redis.destroy)
        self.moto = MotoServer().start()
        self.exits.callback(self.moto.destroy)
        s3_client(self.moto.url).create_bucket(Bucket=BUCKET)
        self.s3 = TcpProxy(self.moto.port).up()
        self.exits.callback(self.s3.down)
        self.rekognition: FakeRekognition = self.exits.enter_context(
            fake_rekognition(s3_endpoint=self.moto.url)
        )
        self.pinster = self.exits.enter_context(PinsterApi())
        self.stack = self._stack()

    def _stack(self) -> Any:
        module = stack_module()
        extra = {
            "API_PUBLIC_KEY": _key("pinster_public.pem"),
            "PRIVATE_KEY": _key("service_private.pem"),
            "IMAGE_SERVICE_URL": settings.IMAGE_SERVICE_URL,
            "PINSTER_API_URL": self.pinster.url,
            "REJECTION_NOTIFY_URL": self.pinster.rejections_url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MODERATION_BACKEND": "moderation.backends.RekognitionBackend",
            "REKOGNITION_ENDPOINT_URL": self.rekognition.url,
            "REKOGNITION_MAX_ATTEMPTS": "1",
            "REKOGNITION_TIMEOUT_SECONDS": "30",
            "STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
            "RECONCILE_INTERVAL_SECONDS": "1",
            "UPLOAD_RATE": "100000/min",
            "STORAGE_TIMEOUT_SECONDS": "3",
            "READINESS_TIMEOUT_SECONDS": "2",
            "LOG_LEVEL": "INFO",
            "HOME": str(self.root),
        }

        class FaultStack(module.Stack):  # type: ignore[misc,name-defined]
            def env(self, **more: str) -> dict[str, str]:
                env = {k: v for k, v in super().env(**more).items() if not k.startswith("TEST_")}
                return env | extra | more

        args = module.parse_args(
            [
                "--port",
                "0",
                "--database-url",
                self.pg.url(),
                "--create-database",
                "--redis-url",
                self.redis.url,
                "--s3-endpoint",
                self.s3.url,
                "--bucket",
                BUCKET,
                "--var-dir",
                str(self.root / "var"),
                "--log-dir",
                str(self.root / "logs"),
                "--threads",
                "2",
                "--shutdown-timeout",
                "30",
                "--start-timeout",
                "120",
            ]
        )
        stack = FaultStack(args)
        try:
            stack.up()
        except Exception:
            stack.down()
            raise RuntimeError(f"the stack did not start:\n{self.logs()}") from None
        self.exits.callback(stack.down)
        return stack

    def close(self) -> None:
        self.exits.close()

    # --- talking to it ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self.stack.web_url)

    def upload(
        self, data: bytes, *, timeout: float = 60, **claims: Any
    ) -> tuple[int, dict[str, str], Any]:
        """POST the image; `claims` change the token's (e.g. the same `imageable_id` again)."""
        body = json.dumps({"data": {"image": base64.b64encode(data).decode()}}).encode()
        request = urllib.request.Request(self.url + "/", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        token = tokens.sign(iss=self.pinster.url, **claims)  # PinsterApi here is the stand-in
        request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        url = self.pg.url().replace("postgres://", "postgresql://", 1)
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def state(self, image_id: str) -> str:
        return str(self.sql("SELECT state FROM uploads_image WHERE id = %s", image_id)[0][0])

    def transitions(self, image_id: str) -> list[tuple[str, str]]:
        rows = self.sql(
            "SELECT from_state, to_state FROM uploads_imageevent WHERE image_id = %s"
            " AND kind = 'transition' ORDER BY at, id",
            image_id,
        )
        return [(a, b) for a, b in rows]

    def wait_final(self, ids: list[str], timeout: float = 90) -> dict[str, str]:
        def done() -> dict[str, str] | None:
            states = {i: self.state(i) for i in ids}
            return states if set(states.values()) <= FINAL else None

        states = wait_until(done, timeout, interval=0.5)
        assert states, f"not final within {timeout}s: {self._states(ids)}\n{self.logs()}"
        return states

    def wait_final_past_leases(self, ids: list[str], quiet: float = 15) -> dict[str, str]:
        """Wait for `ids` to be final; whatever is still held by a lease after `quiet` seconds
        (its worker lost the database mid-task and could not give it back) has its lease run
        out, as it would after the actor's time limit + 30 s, and is finished by the
        reconciler."""
        if wait_until(lambda: set(self._states(ids).values()) <= FINAL, quiet, interval=0.5):
            return self._states(ids)
        for image_id in ids:
            if self.state(image_id) in {"moderating", "publishing"}:
                self.lease_runs_out(image_id)
        return self.wait_final(ids)

    def _states(self, ids: list[str]) -> dict[str, str]:
        return {i: self.state(i) for i in ids}

    def lease_runs_out(self, image_id: str) -> None:
        """What the passing of the lease (the actor's time limit + 30 s) does to a row."""
        self.sql(
            "UPDATE uploads_image SET lease_until = now() - interval '1 second',"
            " state_changed_at = now() - interval '1 hour' WHERE id = %s",
            image_id,
        )

    def wait_states(self, ids: list[str], states: set[str], timeout: float = 90) -> dict[str, str]:
        """Wait until every image of `ids` is in one of `states`."""
        found = wait_until(lambda: set(self._states(ids).values()) <= states, timeout, 0.5)
        assert found, f"not {sorted(states)} within {timeout}s: {self._states(ids)}\n{self.logs()}"
        return self._states(ids)

    def manage(self, *args: str) -> tuple[int, str]:
        """`manage.py <args>` as an operator runs it against this stack: (status, output)."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=repo_root(),
            env=self.stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout + done.stderr[-3000:]

    def check_integrity(self, *args: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "manage.py", "check_integrity", *args],
            cwd=repo_root(),
            env=self.stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout + done.stderr[-3000:]

    def assert_integrity(self) -> None:
        status, out = self.check_integrity("--orphans")
        assert status == 0, out

    # --- the worker processes -----------------------------------------------------------

    def worker(self, number: int) -> Any:
        return next(c for c in self.stack.children if c.name == f"worker-{number}")

    def worker_pids(self, number: int) -> list[int]:
        """The worker instance's processes: its process group."""
        group = self.worker(number).pid
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) == group:
                        pids.append(int(entry.name))
        return pids

    def worker_talking_to(self, port: int) -> int | None:
        """The worker instance (1 or 2) with a connection open to 127.0.0.1:`port`."""
        inodes = _socket_inodes_to(port)
        for number in (1, 2):
            for pid in self.worker_pids(number):
                with contextlib.suppress(OSError):
                    for fd in Path(f"/proc/{pid}/fd").iterdir():
                        if os.readlink(fd) in inodes:
                            return number
        return None

    def kill_worker(self, number: int, sig: signal.Signals) -> None:
        child = self.worker(number)
        if sig == signal.SIGKILL:
            child.kill_group()
        else:
            child.process.send_signal(sig)

    def restart_worker(self, number: int) -> None:
        child = self.worker(number)
        child.wait(60)
        child.kill_group()
        child.log = self.stack.log_file(child.name)
        child.start()
        port = self.stack.worker_ports[number - 1]
        assert wait_until(lambda: port_open("127.0.0.1", port), 60), self.logs()

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "logs").glob("*.log")):
            parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-2500:])
        return "\n".join(parts)

    # --- quiet between tests ------------------------------------------------------------

    def settle(self) -> None:
        """Every fault repaired, the fakes answering at once, every image final."""
        self.s3.up()
        self.rekognition.script, self.rekognition.delay = ["ok"], 0.0
        ids = [str(row[0]) for row in self.sql("SELECT id FROM uploads_image")]
        if ids:
            self.wait_final(ids, timeout=60)


def _socket_inodes_to(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # ESTABLISHED
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def wait_for_request(fake: FakeRekognition, count: int, timeout: float = 30) -> None:
    assert wait_until(lambda: len(fake.requests) >= count, timeout), "Rekognition was not called"
    time.sleep(0.2)  # the worker is now waiting for the answer
