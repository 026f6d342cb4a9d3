"""Delivery: the format an Accept header gets, cache validators, 304s and HEAD."""

from __future__ import annotations

import io

import pytest
import requests
from django.core.files.storage import storages
from PIL import Image as PILImage

from publishing import delivery
from tests.photos import photo
from tests.publishing.test_on_demand import publish
from tests.uploads.conftest import use_local_storage
from uploads.models import Image

pytestmark = pytest.mark.django_db

ACCEPTS = {
    "chrome": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "webp only": "image/webp,*/*",
    "avif refused": "image/avif;q=0,image/webp;q=0.9,*/*;q=0.5",
    "anything": "*/*",
    "image/*": "image/*",
    "none": "",
}


@pytest.fixture
def local(settings, tmp_path) -> None:
    use_local_storage(settings, tmp_path)


@pytest.fixture
def image(post, local) -> Image:
    return publish(post, photo(800, 600))


def served_format(response) -> str:
    with PILImage.open(io.BytesIO(response.content)) as img:
        return str(img.format)


def test_the_format_follows_accept_without_an_extension_and_the_extension_otherwise(client, image):
    assert delivery.avif_available()  # Pillow's wheels encode AVIF; the matrix assumes it
    seen = {}
    for extension in ("", ".jpg", ".webp", ".avif"):
        for name, accept in ACCEPTS.items():
            response = client.get(f"/{image.md5}_200x200{extension}", HTTP_ACCEPT=accept)
            assert response.status_code == 200, response.content
            assert response["Content-Type"] == f"image/{served_format(response).lower()}"
            vary = response.get("Vary", "").split(", ")
            seen[extension, name] = (served_format(response), "Accept" in vary)

    negotiated = {
        "chrome": "AVIF",
        "webp only": "WEBP",
        "avif refused": "WEBP",
        "anything": "JPEG",
        "image/*": "JPEG",
        "none": "JPEG",
    }
    expected = {("", name): (fmt, True) for name, fmt in negotiated.items()}
    for extension, fmt in ((".jpg", "JPEG"), (".webp", "WEBP"), (".avif", "AVIF")):
        expected |= {(extension, name): (fmt, False) for name in ACCEPTS}
    assert seen == expected


def test_an_explicit_jpg_is_the_same_object_as_the_extensionless_key(client, image):
    plain = client.get(f"/{image.md5}_200x200", HTTP_ACCEPT="*/*")
    jpg = client.get(f"/{image.md5}_200x200.jpg", HTTP_ACCEPT="image/avif")

    assert plain.content == jpg.content
    assert f"{image.md5}_200x200" in Image.objects.get(pk=image.pk).renditions


def test_avif_is_made_on_demand_once_and_kept(client, image, monkeypatch):
    key = f"{image.md5}_400x400.avif"
    assert key not in image.renditions  # never made at publication
    first = client.get(f"/{image.md5}_400x400", HTTP_ACCEPT="image/avif")

    from publishing import renders

    monkeypatch.setattr(renders, "render", lambda *a, **k: pytest.fail("rendered again"))
    second = client.get(f"/{image.md5}_400x400", HTTP_ACCEPT="image/avif")

    assert first.content == second.content
    assert served_format(first) == "AVIF"
    with PILImage.open(io.BytesIO(first.content)) as made:
        assert made.size == (400, 300)
    assert key in Image.objects.get(pk=image.pk).renditions


def test_without_an_avif_encoder_avif_is_neither_offered_nor_made(client, image, monkeypatch):
    monkeypatch.setattr(delivery, "avif_available", lambda: False)

    negotiated = client.get(f"/{image.md5}_200x200", HTTP_ACCEPT="image/avif,image/webp")
    explicit = client.get(f"/{image.md5}_200x200.avif")

    assert served_format(negotiated) == "WEBP"
    assert explicit.status_code == 400


@pytest.mark.parametrize("path", ["/{md5}_200x200", "/{md5}_400x400.webp", "/media/{md5}"])
def test_every_served_object_has_a_strong_etag_and_last_modified_and_answers_304(
    client, image, path
):
    url = path.format(md5=image.md5)
    first = client.get(url)
    etag, modified = first["ETag"], first["Last-Modified"]

    by_etag = client.get(url, HTTP_IF_NONE_MATCH=etag)
    by_date = client.get(url, HTTP_IF_MODIFIED_SINCE=modified)
    changed = client.get(url, HTTP_IF_NONE_MATCH='"something-else"')

    assert first.status_code == 200
    assert etag.startswith('"') and not etag.startswith("W/")
    assert (by_etag.status_code, by_etag.content, by_etag["ETag"]) == (304, b"", etag)
    assert by_date.status_code == 304
    assert "max-age" in by_etag["Cache-Control"]
    assert changed.status_code == 200 and changed.content == first.content


def test_a_304_for_a_negotiated_key_keeps_vary_and_is_per_representation(client, image):
    webp = client.get(f"/{image.md5}_200x200", HTTP_ACCEPT="image/webp")
    jpeg = client.get(f"/{image.md5}_200x200", HTTP_ACCEPT="image/jpeg")

    again = client.get(
        f"/{image.md5}_200x200", HTTP_ACCEPT="image/webp", HTTP_IF_NONE_MATCH=webp["ETag"]
    )
    other = client.get(
        f"/{image.md5}_200x200", HTTP_ACCEPT="image/jpeg", HTTP_IF_NONE_MATCH=webp["ETag"]
    )

    assert webp["ETag"] != jpeg["ETag"]
    assert again.status_code == 304 and "Accept" in again["Vary"]
    assert other.status_code == 200 and other.content == jpeg.content


def test_a_head_gets_the_headers_and_no_body(client, image):
    get = client.get(f"/{image.md5}_200x200")
    # The test client drops HEAD bodies itself: ask the view through a plain request.
    from django.test import RequestFactory

    from publishing.views import PublicObjectView

    request = RequestFactory().head(f"/{image.md5}_200x200")
    head = PublicObjectView.as_view()(request, key=f"{image.md5}_200x200")

    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Length"] == str(len(get.content))
    assert (head["ETag"], head["Content-Type"]) == (get["ETag"], get["Content-Type"])


# --- S3: the service redirects, the bucket sends the validators -------------------------------


@pytest.fixture
def s3_image(post, settings) -> Image:
    if not settings.BUCKET_NAME:
        pytest.skip("TEST_STORAGE=local: no S3-compatible server")
    return publish(post, photo(800, 600))


def test_on_s3_a_negotiated_redirect_varies_on_accept(client, s3_image):
    webp = client.get(f"/{s3_image.md5}_200x200", HTTP_ACCEPT="image/webp")
    jpeg = client.get(f"/{s3_image.md5}_200x200", HTTP_ACCEPT="*/*")
    explicit = client.get(f"/{s3_image.md5}_200x200.webp")

    assert webp.status_code == jpeg.status_code == explicit.status_code == 302
    assert webp["Location"].endswith(f"{s3_image.md5}_200x200.webp")
    assert jpeg["Location"].endswith(f"{s3_image.md5}_200x200")
    assert "Accept" in webp["Vary"] and "Accept" in jpeg["Vary"]
    assert "Accept" not in explicit.get("Vary", "").split(", ")


def test_on_s3_objects_carry_validators_and_cache_control_so_a_cdn_revalidates(
    client, s3_image, settings
):
    location = client.get(f"/{s3_image.md5}_200x200.avif")["Location"]

    first = requests.get(location, timeout=10)
    again = requests.get(location, headers={"If-None-Match": first.headers["ETag"]}, timeout=10)

    assert first.status_code == 200
    assert first.headers["Content-Type"] == "image/avif"
    assert first.headers["Cache-Control"] == settings.PUBLIC_CACHE_CONTROL
    assert first.headers["Last-Modified"]
    assert again.status_code == 304
    head = storages["public"].connection.meta.client.head_object(
        Bucket=settings.BUCKET_NAME, Key=f"{s3_image.md5}_200x200.avif"
    )
    assert head["ETag"] == first.headers["ETag"]
