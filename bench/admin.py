"""Admin benchmark: render times of the review queue, the audit history and the CSV export with
100,000 events, each against the same page with 1,000 events measured in this run.

    .venv/bin/python bench/admin.py [--events 100000] [--baseline 1000] [--rounds 7]
    .venv/bin/python bench/admin.py --workspace 40 [--pace-ms 600]

`--workspace N` measures the review workspace instead, in Debian's Chromium against a live
server: N photos in the queue, approved one after the other with the `a` key, and the time from
each keypress to the next image decoded and painted (the page records it). Two paces: keys
pressed as soon as an image is shown (faster than anyone reviews: the preloading is outrun),
and keys pressed `--pace-ms` after it is shown (a quick moderator). Also the server's time for
`review/next/` (claim + render one image) through the test client.

Uses the test settings (PostgreSQL when one answers on 127.0.0.1:5432, else SQLite) on a scratch
database created for this run and dropped at the end, and local files. Pages are rendered
through Django's test client as a logged-in moderator, so the times include the ORM, the
templates and the middleware but no network. Each image has 5 events (upload, 3 transitions,
a notification) and one moderation result; 1 in 4 images waits in the review queue, and the
uploaders are 10 prolific ones plus the sample image's, who uploaded only it.
These machines are noisy: read the medians and the ratios, not single times.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVENTS_PER_IMAGE = 5
HISTORY = "/admin/uploads/imageevent/"
EXPORT_ALL = f"{HISTORY}export/"
SINCE_2000 = "2000-01-01+00:00%2B00:00"


def setup_django() -> Any:
    os.environ.update(
        {"DJANGO_SETTINGS_MODULE": "tests.settings", "TEST_STORAGE": "local", "LOG_LEVEL": "ERROR"}
    )
    import django

    django.setup()
    from django.test.utils import setup_databases, setup_test_environment

    setup_test_environment()
    return setup_databases(verbosity=0, interactive=False)


def add_images(count: int, start: int) -> None:
    """`count` images with their events and moderation results, in bulk."""
    from django.utils import timezone

    from moderation.models import ModerationResult
    from uploads.models import EventKind, Image, ImageEvent, State

    now = timezone.now()
    labels = [{"name": "Suggestive", "parent": "", "confidence": 71.5}]
    for first in range(start, start + count, 5000):
        numbers = range(first, min(first + 5000, start + count))
        images = Image.objects.bulk_create(
            Image(
                user_id=f"user-{n % 10}" if n else "user-sample",
                imageable_type="Pin",
                imageable_id=str(uuid.uuid4()),
                md5=hashlib.md5(str(n).encode()).hexdigest(),
                sha256=hashlib.sha256(str(n).encode()).hexdigest(),
                format="JPEG",
                content_type="image/jpeg",
                width=1200,
                height=800,
                byte_size=250_000,
                state=State.IN_REVIEW if n % 4 == 0 else State.PUBLISHED,
                created_at=now - timedelta(minutes=n),
                state_changed_at=now - timedelta(minutes=n) + timedelta(seconds=20),
            )
            for n in numbers
        )
        ModerationResult.objects.bulk_create(
            ModerationResult(
                image=image,
                backend="moderation.backends.LocalModelBackend",
                model_version="open_nsfw",
                labels=labels,
                outcome=image.state if image.state == State.IN_REVIEW else State.APPROVED,
            )
            for image in images
        )
        steps = [
            (EventKind.UPLOADED, "", State.RECEIVED, "uploader:x"),
            (EventKind.TRANSITION, State.RECEIVED, State.MODERATING, "system:moderate_image"),
            (EventKind.TRANSITION, State.MODERATING, State.APPROVED, "system:moderate_image"),
            (EventKind.TRANSITION, State.APPROVED, State.PUBLISHED, "system:make_thumbnails"),
            (EventKind.NOTIFICATION, "", "", "system:notify_pinster"),
        ]
        ImageEvent.objects.bulk_create(
            ImageEvent(
                image=image,
                at=image.created_at + timedelta(seconds=i),
                kind=kind,
                from_state=before,
                to_state=after,
                actor=actor,
                reason="bench",
            )
            for image in images
            for i, (kind, before, after, actor) in enumerate(steps)
        )


def analyze() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


@dataclass(frozen=True)
class Result:
    wall_ms: float  # median
    cpu_ms: float  # median, this process: ORM, templates, CSV (not PostgreSQL's work)
    db_ms: float  # median of the summed query times Django records
    queries: int
    rows: int | None  # rows shown in the list, or exported


def timed(fn: Callable[[], int | None], rounds: int) -> Result:
    """Medians over `rounds` after a warm-up (caches of content types and permissions)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fn()
    walls, cpus, dbs = [], [], []
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            wall, cpu = time.perf_counter(), time.process_time()
            rows = fn()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        # Read now: the next request clears the log.
        dbs.append(sum(float(query["time"]) for query in captured.captured_queries))
        queries = len(captured.captured_queries)
    return Result(
        *(statistics.median(values) * 1000 for values in (walls, cpus, dbs)), queries, rows
    )


def get(client: Any, url: str) -> Callable[[], int | None]:
    """Fetch a page; returns the rows of its list or CSV (None for other pages)."""

    def fetch() -> int | None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if response.streaming:
            return sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
        changelist = response.context.get("cl") if response.context else None
        return None if changelist is None else len(changelist.result_list)

    return fetch


def pages(sample: Any) -> dict[str, str]:
    return {
        "review queue": "/admin/uploads/image/",
        "all images": "/admin/uploads/image/?show=all",
        "image page": f"/admin/uploads/image/{sample.pk}/change/",
        "admin index + dashboard": "/admin/",
        "history": HISTORY,
        "history: one image": f"{HISTORY}?image={sample.pk}",
        "history: one uploader": f"{HISTORY}?uploader={sample.user_id}",
        "history: prolific uploader": f"{HISTORY}?uploader=user-1",
        "history: search md5": f"{HISTORY}?q={sample.md5}",
        "history: kind + date": f"{HISTORY}?kind__exact=transition&at__gte={SINCE_2000}",
        "export: one uploader": f"{HISTORY}export/?uploader={sample.user_id}",
    }


def export_peak_mib(client: Any) -> float:
    """Peak Python memory while streaming every event as CSV (traced: slow, so run apart)."""
    tracemalloc.start()
    get(client, EXPORT_ALL)()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def measure(client: Any, rounds: int) -> dict[str, Result]:
    from uploads.models import Image

    # The same image at both sizes: the newest of the baseline, waiting in the queue.
    sample = Image.objects.get(md5=hashlib.md5(b"0").hexdigest())
    results = {name: timed(get(client, url), rounds) for name, url in pages(sample).items()}
    results["export: everything"] = timed(get(client, EXPORT_ALL), max(1, rounds // 2))
    return results


def report(
    small: dict[str, Result], large: dict[str, Result], small_events: int, large_events: int
) -> None:
    print(
        f"\nmedian ms at {small_events:,} -> {large_events:,} events "
        "(CPU: this process; DB: query time; wall: both, plus waiting on a loaded machine)"
    )
    print(
        f"{'page':27} {'CPU':>15} {'ratio':>5} {'DB':>13} {'wall':>15} {'ratio':>5}"
        f" {'queries':>7} {'rows':>11}"
    )
    for name, base in small.items():
        big = large[name]
        shown = f"{base.rows}/{big.rows}" if base.rows is not None else ""
        print(
            f"{name:27} {base.cpu_ms:6.1f} -> {big.cpu_ms:6.1f} {big.cpu_ms / base.cpu_ms:5.2f}"
            f" {base.db_ms:4.0f} -> {big.db_ms:5.0f}"
            f" {base.wall_ms:6.1f} -> {big.wall_ms:6.1f} {big.wall_ms / base.wall_ms:5.2f}"
            f" {f'{base.queries}/{big.queries}':>7} {shown:>11}"
        )
    rate = large_events / (large["export: everything"].wall_ms / 1000)
    print(f"\nexport of everything: {rate:,.0f} events/s")


CHROMIUM = "/usr/bin/chromium"


def queue_photos(count: int) -> None:
    """`count` distinct 1600x1067 photos (~300 KB JPEGs) waiting for review, stored for real."""
    from tests.admin.conftest import create_image
    from tests.photos import photo

    subjects = ("astronaut", "chelsea", "rocket", "coffee")
    for n in range(count):
        create_image(
            data=photo(1600 + n, 1067, subject=subjects[n % len(subjects)]),
            waited=timedelta(minutes=count - n),
        )


def live_server() -> Any:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    server = LiveServerThread("localhost", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    return server


def review_with_keys(browser: Any, url: str, count: int, pace_ms: int) -> list[float]:
    """Approve `count` images with the `a` key; the page's keypress-to-painted times."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/admin/login/?next=/admin/review/")
    page.fill("#id_username", "bench")
    page.fill("#id_password", "bench-password-1")
    page.click("input[type=submit]")
    for _ in range(count):
        page.wait_for_function(
            """() => { const item = document.querySelector('#review-current .review-item');
                return item && [...item.querySelectorAll('img')].every(i => i.complete); }"""
        )
        if pace_ms:
            page.wait_for_timeout(pace_ms)
        before = page.eval_on_selector("#review-workspace", "root => root.dataset.current")
        page.keyboard.press("a")
        page.wait_for_function(
            "before => document.getElementById('review-workspace').dataset.current !== before",
            arg=before,
        )
    page.wait_for_function(
        "() => document.getElementById('review-workspace').dataset.unsent === '0'"
    )
    timings = page.evaluate("window.reviewTimings")
    page.close()
    return [float(t) for t in timings]


def next_view_ms(client: Any, rounds: int) -> float:
    """The server's median time for `review/next/` (claims and renders one image)."""
    from moderation.models import ReviewClaim

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.post("/admin/review/next/")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
        assert response.json()["item"]
        ReviewClaim.objects.all().delete()
    return statistics.median(times) * 1000


def bench_workspace(count: int, pace_ms: int) -> None:
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright
    from django.contrib.auth.models import User
    from django.test import Client
    from playwright.sync_api import sync_playwright

    from uploads.models import Image, State

    queue_photos(count * 2)
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    print(f"server, review/next/: median {next_view_ms(client, 15):.0f} ms over 15 calls")
    server = live_server()
    url = f"http://localhost:{server.port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
            )
            for label, pace in (("back to back", 0), (f"{pace_ms} ms pace", pace_ms)):
                timings = review_with_keys(browser, url, count - 1, pace)
                ordered = sorted(timings)
                p90 = ordered[int(len(ordered) * 0.9)]
                print(
                    f"keypress to next image shown, {label}: median "
                    f"{statistics.median(timings):.0f} ms, p90 {p90:.0f} ms, max {ordered[-1]:.0f}"
                    f" ms over {len(timings)} decisions (goal <= 300 ms)"
                )
            browser.close()
    finally:
        server.terminate()
    left = Image.objects.filter(state=State.IN_REVIEW).count()
    print(f"({count * 2 - left} images approved, {left} left)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workspace", type=int, default=0, help="images per pace (see above)")
    parser.add_argument("--pace-ms", type=int, default=600)
    args = parser.parse_args()

    old_config = setup_django()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import teardown_databases

    from uploads.models import ImageEvent

    try:
        call_command("setup_roles", verbosity=0)
        user = User.objects.create_user("bench", password="bench-password-1", is_staff=True)
        user.groups.add(Group.objects.get(name="Moderators"))
        if args.workspace:
            print(f"database: {connection.vendor}")
            bench_workspace(args.workspace, args.pace_ms)
            return
        client = Client()
        client.force_login(user)

        print(f"database: {connection.vendor}; rounds: {args.rounds} (median)")
        baseline_images = args.baseline // EVENTS_PER_IMAGE
        add_images(baseline_images, 0)
        analyze()
        small, small_events = measure(client, args.rounds), ImageEvent.objects.count()
        small_peak = export_peak_mib(client)

        started = time.perf_counter()
        add_images(args.events // EVENTS_PER_IMAGE - baseline_images, baseline_images)
        analyze()
        print(f"(created {args.events:,} events in {time.perf_counter() - started:.1f} s)")
        large, large_events = measure(client, args.rounds), ImageEvent.objects.count()
        large_peak = export_peak_mib(client)
        report(small, large, small_events, large_events)
        print(f"export peak memory (traced): {small_peak:.1f} MiB -> {large_peak:.1f} MiB")
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
