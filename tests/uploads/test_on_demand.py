"""On-demand thumbnails, as the old service offered them, through S3 storage or local files."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import storages
from PIL import Image as PILImage

from moderation.tasks import moderate_image
from tests.photos import photo
from tests.uploads.conftest import data_url
from uploads.models import Image, State
from uploads.tasks import make_thumbnails

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(post) -> Image:
    image_id = post({"data": {"image": data_url(photo(1600, 1200))}}).json()["id"]
    moderate_image(image_id)
    make_thumbnails(image_id)
    image = Image.objects.get(pk=image_id)
    assert image.state == State.PUBLISHED
    return image


def fetch(client, url: str) -> bytes:
    """Follow a redirect to the bucket (S3) or read the served body (local files)."""
    response = client.get(url)
    if response.status_code == 302:
        import requests

        upstream = requests.get(response["Location"], timeout=10)
        assert upstream.status_code == 200
        return upstream.content
    assert response.status_code == 200, response.content
    return response.content


def test_a_missing_allowed_size_is_generated_and_served(client, published):
    key = f"{published.md5}_200x200"
    assert not storages["public"].exists(key)

    data = fetch(client, f"/images/generate?key={key}")

    with PILImage.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 200
    assert storages["public"].exists(key)
    assert key in Image.objects.get(pk=published.pk).renditions


def test_the_short_path_generates_a_webp_too(client, published):
    data = fetch(client, f"/{published.md5}_600x600.webp")
    with PILImage.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (600, 450)


def test_an_already_made_size_is_served_without_rendering_again(client, published, monkeypatch):
    from uploads import thumbnails

    monkeypatch.setattr(thumbnails, "render_one", lambda *a, **k: pytest.fail("rendered again"))
    assert fetch(client, f"/{published.md5}_400x400")


@pytest.mark.parametrize(
    "key",
    ["nonsense", "abc_400x400", "{md5}_123x77", "{md5}_6000x6000", "{md5}_400x400.png", "{md5}"],
)
def test_a_size_outside_the_allow_list_or_a_bad_key_is_a_clean_400(client, published, key):
    response = client.get("/images/generate", {"key": key.format(md5=published.md5)})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_key"


def test_an_unknown_or_unapproved_image_is_a_404_that_reveals_nothing(client, post, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    unapproved = Image.objects.get(pk=image_id).md5
    unknown = "0" * 32

    answers = [client.get(f"/{md5}_400x400") for md5 in (unapproved, unknown)]

    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].content == answers[1].content


def test_with_local_storage_thumbnails_are_served_by_the_service(client, post, tmp_path, settings):
    local = "django.core.files.storage.FileSystemStorage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": local,
            "OPTIONS": {"location": str(tmp_path / "private"), "allow_overwrite": True},
        },
        "public": {
            "BACKEND": local,
            "OPTIONS": {
                "location": str(tmp_path / "public"),
                "base_url": "http://x.test/media/",
                "allow_overwrite": True,
            },
        },
    }
    image_id = post({"data": {"image": data_url(photo(800, 600))}}).json()["id"]
    moderate_image(image_id)
    make_thumbnails(image_id)
    md5 = Image.objects.get(pk=image_id).md5

    # A worker died after writing the objects: the rerun rewrites the same keys.
    Image.objects.filter(pk=image_id).update(state=State.PUBLISHING, lease_until=None)
    make_thumbnails(image_id)
    image = Image.objects.get(pk=image_id)
    assert image.state == State.PUBLISHED
    assert sorted(storages["public"].listdir("")[1]) == sorted(image.renditions)
    thumb = client.get(f"/{md5}_200x200")
    original = client.get(f"/media/{md5}")

    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/jpeg"
    assert thumb["X-Content-Type-Options"] == "nosniff"
    assert "max-age=86400" in thumb["Cache-Control"]
    assert original.status_code == 200
    assert client.get("/media/raw").status_code == 404
