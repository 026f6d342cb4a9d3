"""Anonymous on-demand renders cannot exhaust the web tier: a real gunicorn (2 processes x 4
threads, the defaults) against the test database and S3 server, 8 concurrent requests for 4
WebP sizes of a published 7000x7000 WebP. Every answer is a redirect to the made object or a
503 with Retry-After, and the web processes' peak RSS grows by at most 600 MB (measured from
/proc: each process's VmHWM at the end against its VmRSS before the burst)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from PIL import Image as PILImage
from PIL import ImageDraw

from tests import services
from tests.publishing.test_on_demand import publish
from tests.uploads.conftest import post  # noqa: F401
from uploads.models import Image

pytestmark = [pytest.mark.services, pytest.mark.slow]

SIZES = ("200x200", "600x600", "1200x1200", "3000x3000")  # none made at publication
GROWTH_LIMIT_MB = 600


def huge_webp(side: int = 7000) -> bytes:
    """A 7000x7000 WebP of ~100-200 KB: smooth areas and lines, like the attack's file."""
    img = PILImage.linear_gradient("L").resize((side, side)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for step in range(0, side, 350):
        draw.line((0, step, side, side - step), fill=(200, 40, 40), width=9)
        draw.ellipse((step, step, step + 300, step + 300), outline=(20, 90, 200), width=7)
    out = io.BytesIO()
    img.save(out, "WEBP", quality=60, method=2)
    return out.getvalue()


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    if connection.vendor != "postgresql" or not settings.BUCKET_NAME:
        pytest.skip("needs the PostgreSQL test database and the S3 server")
    port = services.free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imageservice.settings",
        "DATABASE_URL": (
            f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        ),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "4",
        "EMBEDDED_WORKER_THREADS": "0",
        "ON_DEMAND_SIZES": f"{settings.THUMBNAIL_SIZES},{','.join(SIZES)}",
        "RENDER_RATE": "1000/min",
        "HOME": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "imageservice.wsgi", "-c", "gunicorn.conf.py"],
        cwd=services.repo_root(),
        env=env,
        stdout=(tmp_path / "gunicorn.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        services.wait_for_port("127.0.0.1", port, timeout=60)
        deadline = time.monotonic() + 60
        while len(children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", children(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_renders_of_a_huge_webp_stay_within_600_mb(post, web):  # noqa: F811
    image: Image = publish(post, huge_webp(), "image/webp")
    base, workers = web
    for _ in range(8):  # both processes load the application before the burst
        requests.get(f"{base}/{image.md5}_400x400.webp", allow_redirects=False, timeout=30)
    before = {pid: rss_kb(pid, "VmRSS") for pid in workers}
    answers: list[tuple[int, str | None, float]] = []

    def fetch(size: str) -> None:
        started = time.monotonic()
        response = requests.get(
            f"{base}/{image.md5}_{size}.webp", allow_redirects=False, timeout=120
        )
        answers.append(
            (response.status_code, response.headers.get("Retry-After"), time.monotonic() - started)
        )

    threads = [threading.Thread(target=fetch, args=(size,)) for size in SIZES * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)

    growth_mb = sum(rss_kb(pid, "VmHWM") - before[pid] for pid in workers) / 1024
    print(f"\nanswers {sorted(answers)}; web processes' peak RSS growth {growth_mb:.0f} MB")
    assert len(answers) == 8
    assert all(status in (200, 302) or (status == 503 and retry) for status, retry, _ in answers)
    assert growth_mb <= GROWTH_LIMIT_MB
