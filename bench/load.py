"""A bounded load test of the real topology on loopback.

Starts the production topology with deploy/stack.py (gunicorn web, 2 Dramatiq workers on a
private Redis, a fresh PostgreSQL database, moto's S3 server), a stand-in PinsterApi and the
bundled moderation model. Then, open loop (arrivals on a schedule, not after answers):

1. a steady phase: `--rate` uploads/s of ~0.5 MB photos (as the frontend sends them: JSON with a
   data URL, each from another user and pin) for `--duration` seconds;
2. a burst: `--burst-rate` uploads/s for `--burst-duration` seconds;

with `--hostile` of the requests (10%) drawn from the hostile corpus (forged tokens, bad base64,
HTML, truncated JPEGs, header and text-chunk bombs), and during the burst one uploader sending
`--flood` uploads/s, past UPLOAD_RATE. It prints throughput, p50/p95/p99 latency,
answers by status, client timeouts, the time the backlog takes to drain, the peak memory of the
web and worker processes, and the result of `manage.py check_integrity`.

    .venv/bin/python bench/load.py                         # 60 s at 5/s, 10 s at 50/s
    .venv/bin/python bench/load.py --duration 10 --burst-duration 3   # a short run

Targets (issue 9): no 5xx; p95 under 800 ms at the steady rate; every accepted image reaches a
final state (or waits for a human); a burst beyond capacity is answered 429/503 with
Retry-After, never left to time out.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "deploy"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")  # for tests.photos' helpers

RESTING = {"published", "rejected", "failed", "taken_down", "in_review"}


@dataclass
class Result:
    phase: str
    kind: str  # "photo" or the hostile case's name
    status: int  # 0: no answer (timeout or connection error)
    latency: float
    retry_after: str | None = None
    code: str = ""
    image_id: str = ""


@dataclass
class Memory:
    """Peak resident memory per role, sampled every half second (whole process groups)."""

    peak_mb: dict[str, float] = field(default_factory=dict)
    peak_process_mb: dict[str, float] = field(default_factory=dict)


# --- requests ---------------------------------------------------------------------------------


def variant(jpeg: bytes, n: int) -> bytes:
    """The same photo with a unique comment: another md5, another stored original."""
    comment = f"load {n} {uuid.uuid4()}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


class Client:
    def __init__(self, web: str, pinster_url: str, private_pem: str, timeout: float) -> None:
        self.web, self.pinster_url, self.private_pem = web, pinster_url, private_pem
        self.timeout = timeout

    def token(self, **changes: Any) -> str:
        import jwt

        from infra.keys import upload_token_claims

        claims = upload_token_claims(issuer=self.pinster_url, audience=self.web, **changes)
        return jwt.encode(claims, self.private_pem, algorithm="RS256")

    def post(self, body: bytes, token: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        request = urllib.request.Request(self.web + "/", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"code": "NOT JSON", "error": raw[:200].decode(errors="replace")}
            return error.code, dict(error.headers), payload


def hostile_requests(client: Client) -> list[tuple[str, Any]]:
    """(name, () -> (body, token)) for a mix of hostile uploads; each must get a 4xx."""
    from tests.hostile import files
    from tests.photos import photo

    def image(data: bytes) -> bytes:
        return json.dumps({"data": {"image": base64.b64encode(data).decode()}}).encode()

    jpeg = photo(640, 480)
    cases = {
        "forged token": lambda: (image(jpeg), client.token(iss="https://evil.example")),
        "bad base64": lambda: (b'{"data": {"image": "/9j/4AA!!"}}', client.token()),
        "HTML": lambda: (image(files.refused_format("HTML")), client.token()),
        "truncated JPEG": lambda: (image(jpeg[: len(jpeg) // 2]), client.token()),
        "PNG header bomb": lambda: (image(files.png_with_size(100_000, 100_000)), client.token()),
        "zTXt bomb": lambda: (image(files.ztxt_bomb()), client.token()),
        "malformed JSON": lambda: (b'{"data": {"image": ', client.token()),
    }
    for make in cases.values():
        make()  # build (and cache) the files before the clock starts
    return list(cases.items())


def send(client: Client, phase: str, kind: str, body: bytes, token: str) -> Result:
    started = time.perf_counter()
    try:
        status, headers, payload = client.post(body, token)
    except (urllib.error.URLError, OSError, TimeoutError):
        return Result(phase, kind, 0, time.perf_counter() - started)
    return Result(
        phase,
        kind,
        status,
        time.perf_counter() - started,
        headers.get("Retry-After"),
        str(payload.get("code", "")),
        str(payload.get("id", "")) if status in (200, 202) else "",
    )


def run_phase(
    client: Client,
    pool: concurrent.futures.ThreadPoolExecutor,
    phase: str,
    rate: float,
    seconds: float,
    photos: list[bytes],
    hostile: list[tuple[str, Any]],
    hostile_share: float,
    rng: random.Random,
) -> list[concurrent.futures.Future[Result]]:
    futures = []
    start = time.perf_counter()
    count = int(rate * seconds)
    for n in range(count):
        due = start + n / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        if rng.random() < hostile_share:
            kind, make = rng.choice(hostile)
            body, token = make()
        else:
            kind, body, token = "photo", photos[n % len(photos)], client.token()
        futures.append(pool.submit(send, client, phase, kind, body, token))
    return futures


def flood(
    client: Client,
    pool: concurrent.futures.ThreadPoolExecutor,
    rate: float,
    seconds: float,
    body: bytes,
) -> list[concurrent.futures.Future[Result]]:
    """One uploader far past UPLOAD_RATE (60/min): accepted at first, then 429 + Retry-After."""
    user = str(uuid.uuid4())
    futures = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        if (wait := start + n / rate - time.perf_counter()) > 0:
            time.sleep(wait)
        token = client.token(user_id=user)
        futures.append(pool.submit(send, client, "burst", "one uploader flooding", body, token))
    return futures


# --- measurements -------------------------------------------------------------------------


def group_rss_mb(leader: int) -> tuple[float, float]:
    """(total, largest single process) resident MB of the process group led by `leader`."""
    total = largest = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) != leader:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    mb = int(line.split()[1]) / 1024
                    total += mb
                    largest = max(largest, mb)
        except (OSError, ValueError, IndexError):
            continue
    return total, largest


def sample_memory(stack: Any, memory: Memory, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        for child in stack.children:
            if child.name == "s3" or not child.alive():
                continue
            total, largest = group_rss_mb(child.pid)
            memory.peak_mb[child.name] = max(memory.peak_mb.get(child.name, 0), total)
            memory.peak_process_mb[child.name] = max(
                memory.peak_process_mb.get(child.name, 0), largest
            )


def states(database_url: str, ids: list[str]) -> Counter[str]:
    import psycopg

    dsn = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as db:
        rows = db.execute("SELECT state FROM uploads_image WHERE id = ANY(%s::uuid[])", [ids])
        return Counter(state for (state,) in rows)


def wait_resting(database_url: str, ids: list[str], timeout: float) -> tuple[float, Counter[str]]:
    started = time.perf_counter()
    while True:
        found = states(database_url, ids)
        if sum(found[s] for s in RESTING) == len(ids):
            return time.perf_counter() - started, found
        if time.perf_counter() - started > timeout:
            return float("inf"), found
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(results: list[Result], phases: dict[str, float]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for phase, seconds in phases.items():
        mine = [r for r in results if r.phase == phase]
        photos = [r for r in mine if r.kind == "photo"]
        flooded = [r for r in mine if r.kind == "one uploader flooding"]
        ok = [r.latency * 1000 for r in photos if r.status in (200, 202)]
        shed = [r for r in mine if r.status in (429, 503)]
        summary[phase] = {
            "requests": len(mine),
            "photos": len(photos),
            "accepted": len(ok),
            "accepted_per_s": round(len(ok) / seconds, 2),
            "latency_ms": {
                "p50": round(percentile(ok, 50)),
                "p95": round(percentile(ok, 95)),
                "p99": round(percentile(ok, 99)),
                "max": round(max(ok, default=0)),
            },
            "statuses": dict(sorted(Counter(r.status for r in mine).items())),
            "hostile_statuses": dict(
                sorted(Counter(f"{r.kind} {r.status}" for r in mine if r.kind != "photo").items())
            ),
            "timeouts": sum(1 for r in mine if r.status == 0),
            "flood_statuses": dict(sorted(Counter(r.status for r in flooded).items())),
            "shed_without_retry_after": sum(1 for r in shed if not r.retry_after),
            "5xx_other_than_503": sum(1 for r in mine if r.status >= 500 and r.status != 503),
        }
    return summary


# --- the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5.0, help="steady uploads per second")
    parser.add_argument("--duration", type=float, default=60.0, help="steady phase, seconds")
    parser.add_argument("--burst-rate", type=float, default=50.0)
    parser.add_argument("--burst-duration", type=float, default=10.0)
    parser.add_argument("--hostile", type=float, default=0.10, help="share of hostile requests")
    parser.add_argument(
        "--flood", type=float, default=10.0, help="uploads/s from one uploader during the burst"
    )
    parser.add_argument("--photo-kb", type=int, default=500, help="approximate photo size")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout, seconds")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument(
        "--moderation", default="moderation.backends.LocalModelBackend", help="backend path"
    )
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()

    from tests.photos import photo
    from tests.services import redis_server

    jpeg = _photo_of_size(photo, args.photo_kb * 1000)
    photo_count = int(args.rate * args.duration + args.burst_rate * args.burst_duration) + 16
    photos = [
        json.dumps(
            {
                "data": {
                    "image": "data:image/jpeg;base64," + base64.b64encode(variant(jpeg, n)).decode()
                }
            }
        ).encode()
        for n in range(photo_count)
    ]
    print(f"photo: {jpeg_size(jpeg)}, {len(jpeg) / 1000:.0f} KB; {photo_count} distinct bodies")

    run = BenchRun.start("load")
    web, pinster, database_url = run.web, run.pinster, run.database_url
    os.environ.update(
        PINSTER_API_URL=pinster.url,
        IMAGE_SERVICE_URL=web,
        MODERATION_BACKEND=args.moderation,
        LOG_LEVEL="WARNING",
    )
    client = Client(web, pinster.url, run.pinster_private, args.timeout)
    memory = Memory()
    stop_sampling = threading.Event()
    rng = random.Random(9)
    with redis_server() as redis_url:
        stack = run.stack(redis_url)
        try:
            stack.up()
            hostile = hostile_requests(client)
            # Warm up every web process and thread (connections, imports) and both workers.
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                warm = list(
                    pool.map(
                        lambda n: send(client, "warm-up", "photo", photos[-1 - n], client.token()),
                        range(16),
                    )
                )
            assert all(r.status == 202 for r in warm), warm
            wait_resting(database_url, [r.image_id for r in warm], 300)
            threading.Thread(
                target=sample_memory, args=(stack, memory, stop_sampling), daemon=True
            ).start()
            workers = int(args.burst_rate * args.timeout) + 16
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                futures = run_phase(
                    client,
                    pool,
                    "steady",
                    args.rate,
                    args.duration,
                    photos,
                    hostile,
                    args.hostile,
                    rng,
                )
                flooding = pool.submit(
                    flood, client, pool, args.flood, args.burst_duration, photos[-1]
                )
                futures += run_phase(
                    client,
                    pool,
                    "burst",
                    args.burst_rate,
                    args.burst_duration,
                    photos[int(args.rate * args.duration) :],
                    hostile,
                    args.hostile,
                    rng,
                )
                futures += flooding.result()
                burst_sent = time.perf_counter()
                results = [f.result() for f in futures]
            answered = time.perf_counter()
            ids = [r.image_id for r in results if r.image_id]
            drain, final = wait_resting(database_url, ids, args.drain_timeout)
            drain_after_burst = drain + (answered - burst_sent)
            stop_sampling.set()
            integrity = subprocess.run(
                [sys.executable, "manage.py", "check_integrity", "--orphans"],
                cwd=ROOT,
                env=stack.env(),
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            stop_sampling.set()
            stack.down()
            run.stop()

    summary = report(results, {"steady": args.duration, "burst": args.burst_duration})
    summary["drain_s_after_last_request"] = round(drain_after_burst, 1)
    summary["final_states"] = dict(final)
    summary["memory_peak_mb"] = {k: round(v) for k, v in memory.peak_mb.items()}
    summary["memory_peak_process_mb"] = {k: round(v) for k, v in memory.peak_process_mb.items()}
    summary["check_integrity"] = {
        "exit_status": integrity.returncode,
        "output": integrity.stdout.strip().splitlines()[-12:],
    }
    summary["pinster_deliveries_per_event_max"] = max(
        pinster.deliveries_per_event().values(), default=0
    )
    print_summary(args, summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0 if verdict(summary, len(ids)) else 1


def print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    for phase, rate, seconds in (
        ("steady", args.rate, args.duration),
        ("burst", args.burst_rate, args.burst_duration),
    ):
        s = summary[phase]
        lat = s["latency_ms"]
        print(
            f"\n{phase}: {rate:g}/s for {seconds:g}s, {s['requests']} requests "
            f"({s['photos']} photos, the rest hostile)"
        )
        print(
            f"  accepted {s['accepted']} ({s['accepted_per_s']}/s); latency of accepted "
            f"uploads p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
            f"max {lat['max']} ms"
        )
        print(f"  answers by status: {s['statuses']}; client timeouts: {s['timeouts']}")
        print(
            f"  429/503 without Retry-After: {s['shed_without_retry_after']}; "
            f"5xx other than 503: {s['5xx_other_than_503']}"
        )
        hostile = ", ".join(f"{k}: {v}" for k, v in s["hostile_statuses"].items())
        if s["flood_statuses"]:
            print(f"  one uploader at {args.flood:g}/s: {s['flood_statuses']}")
        print(f"  hostile: {hostile}")
    print(
        f"\nbacklog drained {summary['drain_s_after_last_request']} s after the last request; "
        f"states: {summary['final_states']}"
    )
    print(
        "peak memory, MB (process group / largest process): "
        + ", ".join(
            f"{k} {v} / {summary['memory_peak_process_mb'][k]}"
            for k, v in summary["memory_peak_mb"].items()
        )
    )
    print(f"PinsterApi deliveries per event (max): {summary['pinster_deliveries_per_event_max']}")
    integrity = summary["check_integrity"]
    print(f"check_integrity: exit {integrity['exit_status']}: {integrity['output'][-1:]}")


def verdict(summary: dict[str, Any], accepted: int) -> bool:
    steady, burst = summary["steady"], summary["burst"]
    checks = {
        "no 5xx other than 503": steady["5xx_other_than_503"] + burst["5xx_other_than_503"] == 0,
        "p95 < 800 ms at the steady rate": steady["latency_ms"]["p95"] < 800,
        "no client timeouts": steady["timeouts"] + burst["timeouts"] == 0,
        "429/503 carry Retry-After": steady["shed_without_retry_after"]
        + burst["shed_without_retry_after"]
        == 0,
        "every accepted image at rest": sum(summary["final_states"].values()) == accepted,
        "check_integrity passes": summary["check_integrity"]["exit_status"] == 0,
    }
    print()
    for name, passed in checks.items():
        print(f"  [{'x' if passed else ' '}] {name}")
    return all(checks.values())


def _photo_of_size(photo: Any, target: int) -> bytes:
    """A camera-like JPEG close to `target` bytes."""
    width = 1600
    for _ in range(6):
        data = photo(width, width * 3 // 4, quality=85)
        width = max(320, int(width * (target / len(data)) ** 0.5))
        if abs(len(data) - target) < target * 0.15:
            return data
    return data


def jpeg_size(data: bytes) -> str:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return f"{img.width}x{img.height} JPEG"


@dataclass
class BenchRun:
    """A benchmark's own world: a folder, development key pairs, a free port for the web, a
    stand-in PinsterApi that verifies the service's tokens, and a fresh PostgreSQL database."""

    run_dir: Path
    pinster_private: str
    port: int
    web: str
    pinster: Any
    database: str
    database_url: str

    @classmethod
    def start(cls, name: str) -> BenchRun:
        from stack import free_port

        from infra.devsetup import ensure_dev_files
        from infra.keys import dev_key_pair
        from tests.pinster import PinsterApi

        run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        ensure_dev_files(run_dir)
        pinster_private, _ = dev_key_pair(run_dir / "keys", "pinster")
        _, service_public = dev_key_pair(run_dir / "keys", "service")
        port = free_port()
        web = f"http://127.0.0.1:{port}"
        pinster = PinsterApi(public_key=service_public, issuer=web).start()
        database = f"bench_{name}_{os.getpid()}"
        database_url = create_database(database)
        return cls(run_dir, pinster_private, port, web, pinster, database, database_url)

    def stack(self, redis_url: str, *options: str) -> Any:
        """deploy/stack.py's topology on this run's port, database, Redis and folder;
        `options` are more stack.py arguments."""
        from stack import Stack, parse_args

        return Stack(
            parse_args(
                [
                    *("--port", str(self.port), "--database-url", self.database_url),
                    *("--redis-url", redis_url, "--var-dir", str(self.run_dir)),
                    *("--log-dir", str(self.run_dir / "logs"), *options),
                ]
            )
        )

    def stop(self) -> None:
        self.pinster.stop()
        drop_database(self.database)


def create_database(name: str) -> str:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
