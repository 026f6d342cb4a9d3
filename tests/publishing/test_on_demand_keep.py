"""An on-demand render is answered first and kept (stored, recorded) when the WSGI server
closes the response, after sending it; until then its key's render turn is held. Requests go
through Django's WSGI handler as a server calls it, so the test sees the moment in between."""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.storage import storages
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory
from PIL import Image as PILImage

from publishing import on_demand
from tests.photos import photo
from tests.publishing.test_on_demand import publish
from tests.uploads.conftest import use_local_storage
from uploads.models import Image, State

pytestmark = pytest.mark.django_db


@dataclass
class Served:
    status: str
    headers: dict[str, str]
    body: bytes
    response: Any  # what the server closes once it has sent the body

    def close(self) -> None:
        with no_connection_recycling():
            self.response.close()


@contextmanager
def no_connection_recycling() -> Iterator[None]:
    # As Django's test client does: closing "old" connections would end the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def serve(path: str) -> Served:
    """GET `path` through the WSGI handler and read the whole body, without closing."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    environ = RequestFactory().get(path).environ
    with no_connection_recycling():
        response = WSGIHandler()(
            environ, lambda status, headers, *_: started.append((status, headers))
        )
        body = b"".join(response)
    status, headers = started[0]
    return Served(status, dict(headers), body, response)


@pytest.fixture
def local(settings, tmp_path) -> None:
    use_local_storage(settings, tmp_path)


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    made: list[str] = []
    real = on_demand.render

    def counted(image, wanted, fmt):
        made.append(wanted.key(fmt))
        return real(image, wanted, fmt)

    monkeypatch.setattr(on_demand, "render", counted)
    return made


def recorded(image: Image) -> list[str]:
    return list(Image.objects.get(pk=image.pk).renditions)


def test_a_render_is_sent_before_it_is_stored_and_kept_once_the_response_is_closed(local, post):
    image = publish(post, photo(800, 600))
    key = f"{image.md5}_200x200"

    served = serve(f"/{key}")

    assert served.status.startswith("200")
    with PILImage.open(io.BytesIO(served.body)) as thumb:
        assert thumb.size == (200, 150)
    assert not storages["public"].exists(key)
    assert key not in recorded(image)
    served.close()
    assert storages["public"].exists(key)
    assert key in recorded(image)
    with storages["public"].open(key) as stored:
        assert stored.read() == served.body


def test_on_s3_the_object_is_stored_before_the_redirect_and_recorded_after_it(post):
    image = publish(post, photo(800, 600))
    key = f"{image.md5}_200x200"

    served = serve(f"/{key}")

    assert served.status.startswith("302")
    assert storages["public"].exists(key)  # what the redirect names is there
    assert key not in recorded(image)
    served.close()
    assert key in recorded(image)


def test_a_key_stays_its_renderers_until_kept_while_the_render_slot_is_free_at_once(
    local, post, settings, renders
):
    settings.RENDER_CONCURRENCY, settings.RENDER_WAIT_SECONDS = 1, 0.2
    image = publish(post, photo(800, 600))
    first = serve(f"/{image.md5}_200x200")

    other = serve(f"/{image.md5}_600x600")  # the only slot is free again
    same = serve(f"/{image.md5}_200x200")  # the key's turn is not
    other.close()
    same.close()
    first.close()
    again = serve(f"/{image.md5}_200x200")
    again.close()

    assert [first.status[:3], other.status[:3], same.status[:3]] == ["200", "200", "503"]
    assert again.status.startswith("200") and again.body == first.body
    assert renders == [f"{image.md5}_200x200", f"{image.md5}_600x600"]  # not made twice


def test_a_response_never_closed_gives_its_key_back_once_it_is_collected(
    local, post, settings, renders
):
    """Django drops a view's response without closing it when a later middleware fails; the
    key must not stay taken until the worker is recycled."""
    settings.RENDER_WAIT_SECONDS = 0.2
    image = publish(post, photo(800, 600))
    dropped = serve(f"/{image.md5}_200x200")
    assert serve(f"/{image.md5}_200x200").status.startswith("503")  # taken while held

    del dropped
    gc.collect()
    again = serve(f"/{image.md5}_200x200")
    again.close()

    assert again.status.startswith("200")
    assert renders == [f"{image.md5}_200x200"] * 2  # made again: the first was never kept
    assert f"{image.md5}_200x200" in recorded(image)


def test_a_takedown_during_the_render_leaves_nothing_published(local, post, monkeypatch):
    image = publish(post, photo(800, 600))
    real = on_demand.render

    def taken_down_meanwhile(*args, **kwargs):
        Image.objects.filter(pk=image.pk).update(state=State.TAKEN_DOWN)
        return real(*args, **kwargs)

    monkeypatch.setattr(on_demand, "render", taken_down_meanwhile)

    # The request read the image while it was published: it gets what it asked for...
    served = serve(f"/{image.md5}_200x200")
    served.close()

    assert served.status.startswith("200")
    # ...and nothing of these bytes stays public: the object it made goes with the others.
    assert storages["public"].listdir("")[1] == []
    assert recorded(image) == image.renditions
    assert serve(f"/{image.md5}_200x200").status.startswith("404")


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_failed_save_still_answers_with_the_image_and_the_next_request_renders_again(
    post, settings, tmp_path, monkeypatch, renders, storage
):
    if storage == "local":
        use_local_storage(settings, tmp_path)
    image = publish(post, photo(800, 600))
    key = f"{image.md5}_200x200"
    down, real_save = [True], on_demand.save_public

    def save(*args):
        if down:
            raise OSError("storage down")
        real_save(*args)

    monkeypatch.setattr(on_demand, "save_public", save)
    failed = serve(f"/{key}")
    failed.close()
    down.clear()
    served = serve(f"/{key}")
    served.close()

    assert failed.status.startswith("200")  # its bytes, also on S3 where it would redirect
    assert failed.headers["Content-Type"] == "image/jpeg"
    with PILImage.open(io.BytesIO(failed.body)) as thumb:
        assert thumb.size == (200, 150)
    assert key in recorded(image)  # kept by the second request, which rendered it again
    assert renders == [key, key]
