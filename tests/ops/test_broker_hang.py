"""A hung Redis (SIGSTOP for 20 s) under uploads, on deploy/stack.py at default settings: uploads
keep being accepted quickly (a broker call gives up after BROKER_TIMEOUT_SECONDS, the next ones
skip it for BROKER_BACKOFF_SECONDS), and once Redis answers again every image is final within two
minutes (a failed enqueue is taken at the reconciler's next round, RECONCILE_INTERVAL_SECONDS,
not after STALE_AFTER_SECONDS). The numbers are printed and recorded in docs/operations.md."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests import services
from tests.faults.services import PrivateRedis
from tests.ops.test_topology import RunningStack, fresh_database, http, upload_token
from tests.photos import photo

pytestmark = [pytest.mark.services, pytest.mark.slow]

HANG_SECONDS = 20
UPLOADERS = 3  # clients uploading side by side, each every half second
FINAL = {"published", "rejected", "failed", "taken_down"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def states(database_url: str, ids: list[str]) -> dict[str, str]:
    url = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT id::text, state FROM uploads_image WHERE id::text = ANY(%s)", [ids]
        ).fetchall()
    return dict(rows)


def test_uploads_stay_quick_while_redis_hangs_and_every_image_is_final_soon_after(
    tmp_path: Path,
) -> None:
    for binary in ("redis-server", "moto_server", "nginx"):
        found = shutil.which(binary) or (Path(sys.executable).parent / binary).exists()
        if not found and not Path(f"/usr/sbin/{binary}").exists():
            services.missing_service(f"{binary} is not installed")
    redis = PrivateRedis().start()
    try:
        with fresh_database() as database_url:
            stack = RunningStack(tmp_path, database_url, redis.url)
            try:
                stack.wait_up()
                web = stack.state["web"]
                during: list[float] = []
                statuses: list[int] = []
                ids: list[str] = []
                hung = threading.Event()
                stop = threading.Event()

                def upload_continuously(lane: int) -> None:
                    number = 0
                    while not stop.wait(0.5):
                        number += 1
                        jpeg = photo(200 + number, 150 + lane)  # new bytes each time
                        body = {"data": {"image": base64.b64encode(jpeg).decode()}}
                        in_hang = hung.is_set()  # started while Redis was stopped
                        started = time.monotonic()
                        status, _, answer = http(
                            "POST", f"{web}/api/v1/images/", body, upload_token(stack), 30
                        )
                        if in_hang and hung.is_set():  # ...and answered before it resumed
                            during.append(time.monotonic() - started)
                        statuses.append(status)
                        if status == 202:
                            ids.append(json.loads(answer)["id"])

                uploaders = [
                    threading.Thread(target=upload_continuously, args=(lane,), daemon=True)
                    for lane in range(UPLOADERS)
                ]
                for uploader in uploaders:
                    uploader.start()
                time.sleep(5)  # warm: every gunicorn thread has served an upload
                assert redis.process is not None
                redis.process.send_signal(signal.SIGSTOP)
                hung.set()
                try:
                    time.sleep(HANG_SECONDS)
                finally:
                    hung.clear()
                    redis.process.send_signal(signal.SIGCONT)
                resumed = time.monotonic()
                time.sleep(3)
                stop.set()
                for uploader in uploaders:
                    uploader.join(40)

                deadline = resumed + 180
                current: dict[str, str] = {}
                while time.monotonic() < deadline:
                    current = states(database_url, ids)
                    if set(current.values()) <= FINAL:
                        break
                    time.sleep(1)
                final_after = time.monotonic() - resumed

                result = {
                    "uploads": len(statuses),
                    "statuses": sorted(set(statuses)),
                    "uploads_during_hang": len(during),
                    "upload_p95_during_hang_ms": round(percentile(during, 0.95) * 1000),
                    "upload_max_during_hang_ms": round(max(during) * 1000),
                    "all_final_after_resume_s": round(final_after, 1),
                    "states": sorted(set(current.values())),
                }
                print("redis hang:", json.dumps(result))
                if os.environ.get("KEEP_STACK_LOGS"):
                    shutil.copytree(stack.logs, os.environ["KEEP_STACK_LOGS"], dirs_exist_ok=True)
                assert set(statuses) == {202}, statuses
                assert len(during) >= 30
                assert set(current.values()) <= FINAL, (current, stack.tail())
                assert len(current) == len(ids)
            finally:
                stack.stop()
                stack.kill_leftovers()
    finally:
        if redis.process is not None:
            redis.process.send_signal(signal.SIGCONT)
        redis.destroy()
