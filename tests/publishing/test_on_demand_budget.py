"""The on-demand render budget: one render per key at a time, a per-process cap, and a
per-client rate for keys that do not exist yet. (The memory it holds the web tier to, against
a real gunicorn: tests/ops/test_on_demand_memory.py.)"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from publishing import budget, on_demand
from tests.photos import photo
from tests.publishing.test_on_demand import publish
from tests.uploads.conftest import use_local_storage
from uploads.models import Image


@pytest.fixture
def image(post, settings, tmp_path) -> Image:
    use_local_storage(settings, tmp_path)
    return publish(post, photo(800, 600))


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_one_missing_key_render_it_once(image, monkeypatch, settings):
    settings.RENDER_WAIT_SECONDS = 30
    renders = []
    real = on_demand.render

    def slow_render(*args, **kwargs):
        renders.append(args[2])
        time.sleep(0.5)  # long enough for every other request to arrive meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(on_demand, "render", slow_render)
    answers: list[tuple[int, bytes]] = []

    def fetch() -> None:
        try:
            response = Client().get(f"/{image.md5}_200x200.webp")
            answers.append((response.status_code, response.content))
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert renders == ["WEBP"]
    assert [status for status, _ in answers] == [200] * 6
    assert len({content for _, content in answers}) == 1


@pytest.mark.django_db
def test_with_every_render_slot_taken_a_new_key_is_a_503_with_retry_after(client, image, settings):
    settings.RENDER_CONCURRENCY, settings.RENDER_WAIT_SECONDS = 1, 0.2
    slots = budget._process_slots()
    assert slots.acquire(timeout=1)  # another request is rendering
    try:
        busy = client.get(f"/{image.md5}_200x200")
        existing = client.get(f"/{image.md5}_400x400")  # made at publication: no render
    finally:
        slots.release()
    after = client.get(f"/{image.md5}_200x200")

    assert (busy.status_code, busy.json()["code"]) == (503, "busy")
    assert int(busy["Retry-After"]) >= 1
    assert existing.status_code == 200
    assert after.status_code == 200


@pytest.mark.django_db
def test_a_key_another_process_is_rendering_waits_then_gets_a_503(client, image, settings):
    settings.RENDER_WAIT_SECONDS = 0.3
    key = f"{image.md5}_200x200"
    cache.add(f"render:{key}", "another process", 60)

    started = time.monotonic()
    response = client.get(f"/{key}")

    assert response.status_code == 503 and "Retry-After" in response
    assert time.monotonic() - started >= 0.3
    cache.delete(f"render:{key}")
    assert client.get(f"/{key}").status_code == 200


@pytest.mark.django_db
def test_renders_of_new_keys_are_rate_limited_per_client_and_made_ones_are_not(
    client, image, settings
):
    settings.RENDER_RATE = "2/min"
    new = [f"/{image.md5}_{box}" for box in ("200x200", "600x600", "1200x1200")]

    answers = [client.get(url).status_code for url in new]
    limited = client.get(new[2])
    made = client.get(new[0]), client.get(f"/{image.md5}_400x400")
    spoofed = client.get(new[2], HTTP_X_FORWARDED_FOR="198.51.100.9")
    elsewhere = client.get(new[2], REMOTE_ADDR="192.0.2.7")

    assert answers == [200, 200, 429]
    assert limited.json()["code"] == "throttled" and int(limited["Retry-After"]) > 0
    assert [response.status_code for response in made] == [200, 200]
    assert spoofed.status_code == 429  # no trusted proxy configured: the header is not believed
    assert elsewhere.status_code == 200
