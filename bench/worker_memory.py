"""Worker memory under huge decodes: 4 concurrent 49-megapixel WebP uploads and 2 PNG.

Starts the production topology on loopback (deploy/stack.py: gunicorn, Dramatiq workers as
compose runs them, 4 threads per process, PostgreSQL, Redis, moto S3, the bundled moderation
model), uploads one small photo to warm every worker up, then the 6 huge images at once, and
waits until every image is in a final state (published, rejected or failed; in review counts
as decided). Prints, for every worker process, its peak RSS (VmHWM) and its growth over its
resident memory after the warm-up, and checks: no worker died, every image final, each
worker's growth <= 1.5 GB. The decode budget (DECODE_PIXEL_BUDGET, default 64 MP) is what
bounds it: a decode that would exceed it waits.

    .venv/bin/python bench/worker_memory.py [--processes 2] [--threads 4] [--budget N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "deploy"))

GROWTH_LIMIT_MB = 1536


def upload(url: str, token: str, data: bytes, content_type: str) -> int:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    request = urllib.request.Request(
        url + "/",
        data=head + data + f"\r\n--{boundary}--\r\n".encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return int(response.status)


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker_pids(session: int) -> dict[int, str]:
    """Processes of a worker instance's session that run Dramatiq's worker code."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[3]) == session and "dramatiq" in cmdline:
            found[int(entry)] = cmdline[:80]
    return found


def states(database_url: str) -> dict[str, int]:
    import psycopg

    dsn = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as db:
        return dict(db.execute("SELECT state, count(*) FROM uploads_image GROUP BY state"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=2, help="per worker instance")
    parser.add_argument("--threads", type=int, default=4, help="per worker process")
    parser.add_argument("--budget", type=int, default=0, help="DECODE_PIXEL_BUDGET; 0: default")
    args = parser.parse_args()

    from load import BenchRun  # bench/load.py, beside this script
    from pipeline import sign_token

    from tests.photos import photo
    from tests.services import redis_server

    print("making 4 WebP and 2 PNG of 7000x7000 ...", flush=True)
    from tests.photos import huge_picture as huge

    inputs = [(huge("WEBP", n), "image/webp") for n in range(4)]
    inputs += [(huge("PNG", n + 4), "image/png") for n in range(2)]
    print("sizes: " + ", ".join(f"{len(d) / 1e3:.0f} KB" for d, _ in inputs), flush=True)
    run = BenchRun.start("memory")
    os.environ.update(
        PINSTER_API_URL=run.pinster.url,
        IMAGE_SERVICE_URL=run.web,
        MODERATION_BACKEND="moderation.backends.LocalModelBackend",
        UPLOAD_RATE="100000/min",
        LOG_LEVEL="WARNING",
        MAX_IMAGE_BYTES=str(30 * 1024 * 1024),
    )
    if args.budget:
        os.environ["DECODE_PIXEL_BUDGET"] = str(args.budget)
    with redis_server() as redis_url:
        stack = run.stack(
            redis_url,
            *("--workers", "1", "--processes", str(args.processes)),
            *("--threads", str(args.threads), "--web-workers", "1"),
        )
        try:
            stack.up()
            token = sign_token(run.pinster_private, run.web, run.pinster.url)
            for _ in range(args.processes * 2):  # warm up: model loaded in every process
                upload(run.web, token, photo(640, 480), "image/jpeg")
            deadline = time.monotonic() + 180
            while sum(states(run.database_url).values()) and time.monotonic() < deadline:
                counts = states(run.database_url)
                if sum(v for k, v in counts.items() if k in FINAL) == sum(counts.values()):
                    break
                time.sleep(0.5)
            worker = next(c for c in stack.children if c.name.startswith("worker"))
            pids = worker_pids(worker.pid)
            before = {pid: status_kb(pid, "VmRSS") for pid in pids}
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda i: upload(run.web, token, *i), inputs))
            print(f"upload answers: {answers}", flush=True)
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                counts = states(run.database_url)
                if sum(v for k, v in counts.items() if k in FINAL) == sum(counts.values()):
                    break
                time.sleep(1)
            took = time.perf_counter() - start
            alive = {pid: Path(f"/proc/{pid}").exists() for pid in pids}
            peaks = {pid: status_kb(pid, "VmHWM") for pid in pids if alive[pid]}
        finally:
            stack.down()
            run.stop()
    print(f"final states after {took:.0f} s: {counts}")
    worst = 0.0
    for pid, cmd in pids.items():
        if pid not in peaks:
            print(f"  pid {pid} DIED ({cmd})")
            continue
        growth = (peaks[pid] - before[pid]) / 1024
        worst = max(worst, growth)
        print(f"  pid {pid}: RSS after warm-up {before[pid] / 1024:.0f} MB, peak "
              f"{peaks[pid] / 1024:.0f} MB, growth {growth:.0f} MB  ({cmd})")  # fmt: skip
    every_final = all(k in FINAL for k in counts)
    print(f"every worker alive: {all(alive.values())}; every image final: {every_final}")
    print(f"worker peak RSS growth max: {worst:.0f} MB (limit {GROWTH_LIMIT_MB} MB) "
          f"{'OK' if worst <= GROWTH_LIMIT_MB and all(alive.values()) else 'MISSED'}")  # fmt: skip


FINAL = {"published", "rejected", "failed", "taken_down", "in_review"}


if __name__ == "__main__":
    main()
