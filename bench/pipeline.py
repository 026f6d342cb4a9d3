"""The whole pipeline against the thumbnail step alone, measured in the same run.

Starts the production topology on loopback (deploy/stack.py: gunicorn web, 2 Dramatiq worker
processes on a private Redis, PostgreSQL, moto S3) with the bundled moderation model and a
stand-in PinsterApi, uploads N real 12-megapixel photos and waits until every one is published
and PinsterApi was told. Then it renders the same images with the thumbnail step alone (the
same publishing work: stripped original + every size in JPEG and WebP) in 2 processes. Prints
images per second for both and the ratio (goal: the pipeline adds under 25%).

In the same run it asks Thumbor (a separate install, never a project dependency: --thumbor,
or installed into var/bench-venv) for the same public objects of the same images: the
original re-encoded at quality 90 and every default size in JPEG and WebP, 11 requests per
image, and prints our CPU per image over all our processes against Thumbor's
(`pipeline/thumbor cpu per image`, goal <= 0.4).

    .venv/bin/python bench/pipeline.py [--images 24] [--threads 2] [--thumbor PATH]
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


def variant(jpeg: bytes, n: int) -> bytes:
    comment = f"pipeline bench {n} {uuid.uuid4()}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def upload(url: str, token: str, data: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url + "/",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202, response.status
        return response.headers["Location"]


def sign_token(private_pem: str, service_url: str, pinster_url: str) -> str:
    import jwt

    from infra.keys import upload_token_claims

    claims = upload_token_claims(issuer=pinster_url, audience=service_url, lifetime=3600)
    return jwt.encode(claims, private_pem, algorithm="RS256")


def render_publication(data: bytes) -> float:
    """What make_thumbnails renders for one image, with the service's default settings;
    returns the CPU seconds it took."""
    from publishing import thumbnails

    start = time.process_time()
    sizes = thumbnails.parse_sizes("100x100,400x400,800x800,1600x1600,400xauto")
    thumbnails.render_thumbnails(
        data, sizes, formats=("JPEG", "WEBP"), include_original=True, original_max_side=4096
    )
    return time.process_time() - start


def thumbnails_alone(images: list[bytes]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to render every image in 2 processes."""
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(render_publication, images[:2]))  # warm up both processes
        start = time.perf_counter()
        cpu = sum(pool.map(render_publication, images))
        return time.perf_counter() - start, cpu


THUMBOR_PATHS = [
    "filters:quality(90)/{name}",  # the published original, re-encoded
    *(
        f"fit-in/{box}/{fmt}{{name}}"
        for box in ("100x100", "400x400", "800x800", "1600x1600", "400x0")
        for fmt in ("", "filters:format(webp)/")
    ),
]


def thumbor_cpu(images: list[bytes], binary: str | None) -> float | None:
    """Thumbor's CPU seconds per image for the outputs publishing makes, or None."""
    import tempfile

    from thumbnails import server_cpu, start_thumbor, thumbor_binary  # bench/thumbnails.py

    path = thumbor_binary(binary)
    if path is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pipeline-thumbor-") as tmp:
        for n, data in enumerate(images):
            (Path(tmp) / f"p{n}.jpg").write_bytes(data)
        server, base = start_thumbor(path, Path(tmp))
        try:
            for url in THUMBOR_PATHS:  # warm up on the first image
                urllib.request.urlopen(f"{base}/unsafe/{url.format(name='p0.jpg')}").read()
            before = server_cpu(server.pid)
            for n in range(1, len(images)):
                for url in THUMBOR_PATHS:
                    urllib.request.urlopen(f"{base}/unsafe/{url.format(name=f'p{n}.jpg')}").read()
            return (server_cpu(server.pid) - before) / (len(images) - 1)
        finally:
            server.terminate()
            server.wait(timeout=10)


def cpu_seconds(session_ids: set[int]) -> float:
    """CPU (user + system) of every live process in these sessions (the stack's children run
    in their own sessions, so this counts gunicorn's and Dramatiq's forks too)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in session_ids:  # field 6 of stat: the session id
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def wait_published(database_url: str, count: int, timeout: float) -> float:
    import psycopg

    deadline = time.monotonic() + timeout
    dsn = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as db:
        while time.monotonic() < deadline:
            done = db.execute(
                "SELECT count(*) FROM notifications_notification WHERE state = 'delivered'"
            ).fetchone()[0]
            states = dict(db.execute("SELECT state, count(*) FROM uploads_image GROUP BY state"))
            if done >= count:
                return time.perf_counter()
            if states.get("failed") or states.get("in_review") or states.get("rejected"):
                raise RuntimeError(f"not every image was approved: {states}")
            time.sleep(0.1)
    raise TimeoutError(f"pipeline did not finish in {timeout}s: {states}, {done} delivered")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2, help="per worker process")
    parser.add_argument("--thumbor", help="a thumbor executable (default: install into var/)")
    args = parser.parse_args()

    from load import BenchRun  # bench/load.py, beside this script

    from tests.photos import photo
    from tests.services import redis_server

    jpeg = photo(4000, 3000, quality=92)
    images = [variant(jpeg, n) for n in range(args.images)]
    print(f"{args.images} uploads of a {len(jpeg) / 1e6:.1f} MB 12-megapixel JPEG")

    before = thumbnails_alone(images)  # measured before and after: load drifts on these machines
    run = BenchRun.start("pipeline")
    web, pinster, database_url = run.web, run.pinster, run.database_url
    os.environ.update(
        PINSTER_API_URL=pinster.url,
        IMAGE_SERVICE_URL=web,
        MODERATION_BACKEND="moderation.backends.LocalModelBackend",
        UPLOAD_RATE="100000/min",
        LOG_LEVEL="WARNING",
    )
    with redis_server() as redis_url:
        stack = run.stack(
            redis_url,
            *("--workers", "2", "--processes", "1", "--threads", str(args.threads)),
            *("--web-workers", "1"),
        )
        try:
            stack.up()
            token = sign_token(run.pinster_private, web, pinster.url)
            # Warm up every worker thread of both processes (the model loaded in each process,
            # each thread's connections open): steady state is what is measured. One warm-up
            # image left the other process to load its model during the measured images.
            warm_up = 4 * args.threads
            small_photo = photo(640, 480)
            small = [variant(small_photo, -n) for n in range(1, warm_up + 1)]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda data: upload(web, token, data), small))
            wait_published(database_url, warm_up, 120)
            ours = {c.pid for c in stack.children if c.name != "s3"}
            store = {c.pid for c in stack.children if c.name == "s3"}
            cpu_start, store_start = cpu_seconds(ours), cpu_seconds(store)
            per_child = {c.name: cpu_seconds({c.pid}) for c in stack.children}
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda data: upload(web, token, data), images))
            uploaded = time.perf_counter()
            finished = wait_published(database_url, args.images + warm_up, 60 + 10 * args.images)
            cpu = cpu_seconds(ours) - cpu_start
            store_cpu = cpu_seconds(store) - store_start
            by_process = {
                c.name: round((cpu_seconds({c.pid}) - per_child[c.name]) / args.images * 1000)
                for c in stack.children
            }
        finally:
            stack.down()
            run.stop()
    pipeline = finished - start
    after = thumbnails_alone(images)
    alone, alone_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    print(f"uploads accepted in {uploaded - start:.1f}s")
    print(
        f"pipeline end to end:  {args.images / pipeline:.2f} images/s "
        f"({pipeline:.1f}s: upload, moderation, thumbnails, notification)"
    )
    print(
        f"thumbnail step alone: {args.images / alone:.2f} images/s ({alone:.1f}s, 2 processes, "
        "mean of a run before and one after)"
    )
    print(f"ratio pipeline / thumbnails alone, wall clock: {pipeline / alone:.2f}x")
    print(
        f"CPU per image: pipeline {cpu / args.images * 1000:.0f} ms in our processes "
        f"(web + workers), thumbnail step alone {alone_cpu / args.images * 1000:.0f} ms; "
        f"ratio {cpu / alone_cpu:.2f}x  (goal: under 1.25x)"
    )
    print(f"CPU ms per image, by process: {by_process}")
    thumbor = thumbor_cpu(images[: max(4, args.images // 2)], args.thumbor)
    if thumbor is not None:
        print(
            f"Thumbor, same outputs of the same images (original + 5 sizes x JPEG, WebP): "
            f"{thumbor * 1000:.0f} ms CPU per image"
        )
        print(f"pipeline/thumbor cpu per image: {cpu / args.images / thumbor:.2f}")
    print(
        f"the S3 stand-in (moto, not part of the service) used another "
        f"{store_cpu / args.images * 1000:.0f} ms of CPU per image on the same 2 cores"
    )
    print(
        f"every image delivered to PinsterApi exactly once: "
        f"{max(pinster.deliveries_per_event().values()) == 1}"
    )


if __name__ == "__main__":
    main()
