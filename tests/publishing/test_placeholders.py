"""Placeholders made at publication: a BlurHash and the dominant colour, in the status API and
in the approval sent to PinsterApi."""

from __future__ import annotations

import io
import math

import blurhash
import pytest
from django.core.files.storage import storages
from django.test import override_settings
from PIL import Image as PILImage

from notifications.models import Notification
from notifications.tasks import notify_pinster
from publishing import placeholders, services
from tests.photos import photo
from tests.pinster import PinsterApi
from tests.publishing.test_on_demand import publish
from tests.uploads.conftest import data_url
from uploads.models import Image

pytestmark = pytest.mark.django_db


def mean_colour(img: PILImage.Image) -> list[int]:
    """The mean in linear light, as sRGB 0-255: what a BlurHash's DC term holds (the plain
    sRGB mean of a photo is darker, here by ~20 levels)."""
    raw = img.convert("RGB").tobytes()
    pixels = len(raw) // 3
    return [
        blurhash.linear_to_srgb(sum(blurhash.srgb_to_linear(v) for v in raw[c::3]) / pixels)
        for c in range(3)
    ]


def test_a_published_image_gets_a_blurhash_that_decodes_to_its_thumbnails_colours(post):
    image = publish(post, photo(1600, 1200))

    assert 20 <= len(image.blurhash) <= 40  # 4x3 components: 28 characters
    assert blurhash.components(image.blurhash) == (4, 3)
    thumb_bytes = storages["public"].open(f"{image.md5}_100x100").read()
    with PILImage.open(io.BytesIO(thumb_bytes)) as thumb:
        expected = mean_colour(thumb)
    rows = blurhash.decode(image.blurhash, 32, 24)
    decoded = PILImage.new("RGB", (32, 24))
    decoded.putdata([tuple(int(c) for c in pixel[:3]) for row in rows for pixel in row])
    assert math.dist(mean_colour(decoded), expected) < 8


def test_a_portrait_gets_more_components_along_its_height(post):
    image = publish(post, photo(600, 1200))
    assert blurhash.components(image.blurhash) == (3, 4)


def test_the_dominant_colour_is_what_most_of_the_picture_is_not_the_mean():
    img = PILImage.new("RGB", (100, 100), (20, 140, 40))  # a lawn
    img.paste((220, 30, 30), (0, 0, 100, 35))  # a large red flower bed
    out = io.BytesIO()
    img.save(out, "PNG")

    colour = placeholders.placeholder(out.getvalue(), (255, 255, 255))["dominant_color"]

    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    assert colour.startswith("#") and len(colour) == 7
    assert math.dist((red, green, blue), (20, 140, 40)) < 12


def test_the_placeholder_comes_from_the_smallest_thumbnail_not_the_original(post, monkeypatch):
    reads: list[str] = []
    real = services.read_public
    monkeypatch.setattr(services, "read_public", lambda key: reads.append(key) or real(key))

    image = publish(post, photo(1600, 1200))

    assert reads == [f"{image.md5}_100x100"]
    assert image.dominant_color


def test_a_placeholder_that_cannot_be_made_never_holds_up_publication(post, monkeypatch):
    def broken(key: str) -> bytes:
        raise OSError("storage hiccup")

    monkeypatch.setattr(services, "read_public", broken)

    image = publish(post, photo(800, 600))

    assert (image.blurhash, image.dominant_color) == ("", "")


def test_the_status_api_returns_the_placeholder(api, post):
    image = publish(post, photo(800, 600))

    body = api.get(f"/api/v1/images/{image.pk}").json()

    assert body["blurhash"] == image.blurhash
    assert body["dominant_color"] == image.dominant_color


def test_an_unpublished_image_has_no_placeholder_yet(api, post, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]

    body = api.get(f"/api/v1/images/{image_id}").json()

    assert (body["blurhash"], body["dominant_color"]) == (None, None)


def test_the_approval_carries_the_placeholder_and_pinster_accepts_it(post):
    image = publish(post, photo(800, 600))
    notification = Notification.objects.get(image=image, kind=Notification.Kind.APPROVED)

    with PinsterApi() as pinster, override_settings(PINSTER_API_URL=pinster.url):
        # The uploader's token names the configured PinsterApi: point the outbox row here.
        Notification.objects.filter(pk=notification.pk).update(url=f"{pinster.url}/v1/images/")
        notify_pinster(str(notification.pk))

    [received] = pinster.requests()
    assert received.errors == [] and received.status == 201
    assert received.body["data"]["blurhash"] == image.blurhash
    assert received.body["data"]["dominant_color"] == image.dominant_color
    assert Image.objects.get(pk=image.pk).blurhash == image.blurhash != ""


def test_regenerating_thumbnails_fills_in_the_placeholder_of_an_older_image(post):
    image = publish(post, photo(800, 600))
    placeholder = (image.blurhash, image.dominant_color)
    Image.objects.filter(pk=image.pk).update(blurhash="", dominant_color="")

    services.regenerate_thumbnails(Image.objects.get(pk=image.pk), include_original=False)

    image.refresh_from_db()
    assert (image.blurhash, image.dominant_color) == placeholder
