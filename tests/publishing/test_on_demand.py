"""On-demand thumbnails, as the old service offered them, through S3 storage or local files."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import storages
from PIL import Image as PILImage
from PIL import ImageOps

from moderation.tasks import moderate_image
from publishing import on_demand
from publishing import services as publishing
from publishing.tasks import make_thumbnails
from tests.photos import photo, psnr
from tests.uploads.conftest import data_url, use_local_storage
from uploads.models import Image, State

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(post) -> Image:
    return publish(post, photo(1600, 1200))


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
    from publishing import thumbnails

    monkeypatch.setattr(thumbnails, "render_one", lambda *a, **k: pytest.fail("rendered again"))
    assert fetch(client, f"/{published.md5}_400x400")


@pytest.mark.parametrize(
    "key",
    ["nonsense", "abc_400x400", "{md5}_6000x6000", "{md5}_400x400.png", "{md5}", "{md5}_0x100"],
)
def test_a_bad_key_is_a_clean_400(client, published, key):
    response = client.get("/images/generate", {"key": key.format(md5=published.md5)})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_key"


@pytest.mark.parametrize("key", ["{md5}_123x77", "{md5}_4000x4000.webp", "{md5}_400x400_fill"])
def test_a_size_outside_the_allow_list_or_a_fill_asks_for_a_signed_url(client, published, key):
    response = client.get(f"/{key.format(md5=published.md5)}")
    assert response.status_code == 403
    assert response.json()["code"] == "signature_required"


def test_the_old_bucket_redirect_target_at_the_root_generates_too(client, published):
    data = fetch(client, f"/generate?key={published.md5}_200x200")
    with PILImage.open(io.BytesIO(data)) as thumb:
        assert thumb.size == (200, 150)


def test_an_unknown_or_unapproved_image_is_a_404_that_reveals_nothing(client, post, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    unapproved = Image.objects.get(pk=image_id).md5
    unknown = "0" * 32

    answers = [client.get(f"/{md5}_400x400") for md5 in (unapproved, unknown)]

    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].content == answers[1].content


def test_with_local_storage_thumbnails_are_served_by_the_service(client, post, tmp_path, settings):
    use_local_storage(settings, tmp_path)
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


# --- smaller sizes are made from a published thumbnail, not the original ---------------------


def publish(post, data: bytes, content_type: str = "image/jpeg") -> Image:
    image_id = post({"data": {"image": data_url(data, content_type)}}).json()["id"]
    moderate_image(image_id)
    make_thumbnails(image_id)
    image = Image.objects.get(pk=image_id)
    assert image.state == State.PUBLISHED
    return image


def decoded(data: bytes) -> PILImage.Image:
    with PILImage.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def from_the_original(image: Image, box: str, fmt: str = "JPEG") -> PILImage.Image:
    from publishing import thumbnails

    original = publishing.read_original(image)
    size = thumbnails.parse_sizes(box)[0]
    return decoded(thumbnails.render_one(original, size, fmt, **publishing.render_options()).data)


@pytest.fixture
def original_reads(monkeypatch) -> list[str]:
    """The sources renders read: "original" (the private one), the md5 (the published
    original) or a thumbnail's key."""
    reads: list[str] = []
    real_private, real_public = on_demand.read_original, on_demand.read_public

    def private(image):
        reads.append("original")
        return real_private(image)

    def public(key):
        reads.append(key)
        return real_public(key)

    monkeypatch.setattr(on_demand, "read_original", private)
    monkeypatch.setattr(on_demand, "read_public", public)
    return reads


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_small_size_is_made_from_a_larger_thumbnail_with_the_same_size_and_pixels(
    client, post, original_reads, orientation
):
    # 1600x1200 upright: the 400x400 thumbnail (400x300) is twice the 200x150 wanted.
    image = publish(post, photo(1600, 1200, orientation=orientation))
    original_reads.clear()

    made = decoded(fetch(client, f"/{image.md5}_200x200"))

    assert original_reads == [f"{image.md5}_400x400"]
    expected = from_the_original(image, "200x200")
    assert made.size == expected.size == (200, 150)
    # Against a full-size Lanczos of the upright original, as good as a render of the original
    # (measured 0.1 dB apart), so the right way up too.
    with PILImage.open(io.BytesIO(publishing.read_original(image))) as original:
        reference = ImageOps.exif_transpose(original).convert("RGB")
    reference = reference.resize(made.size, PILImage.Resampling.LANCZOS)
    assert psnr(made, reference) > psnr(expected, reference) - 0.5
    assert psnr(made, reference) > 30  # the grain of this photo: ~31.7 dB either way


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_size_no_thumbnail_is_twice_as_large_as_is_made_from_the_published_original(
    client, post, original_reads, orientation
):
    # 1200x1200 wants 1200x900: the largest thumbnail (1600x1200, the whole photo) is not 2x.
    image = publish(post, photo(1600, 1200, orientation=orientation))
    original_reads.clear()

    made = decoded(fetch(client, f"/{image.md5}_1200x1200"))

    assert original_reads == [image.md5]
    assert made.size == (1200, 900)


def test_a_published_original_with_alpha_is_a_source_too(client, post, original_reads):
    image = publish(post, photo(1600, 1200, fmt="PNG", mode="RGBA"), "image/png")
    original_reads.clear()

    with PILImage.open(io.BytesIO(fetch(client, f"/{image.md5}_1200x1200.webp"))) as made:
        assert (made.size, made.mode) == ((1200, 900), "RGBA")
    assert original_reads == [image.md5]  # a PNG: its size comes from Pillow


def test_a_missing_source_thumbnail_falls_back_to_the_published_original(
    client, post, original_reads
):
    image = publish(post, photo(1600, 1200))
    for key in image.renditions:
        if key != image.md5:
            storages["public"].delete(key)
    original_reads.clear()

    made = decoded(fetch(client, f"/{image.md5}_200x200"))

    assert original_reads[-1] == image.md5  # after trying the (missing) thumbnails
    assert "original" not in original_reads
    assert psnr(made, from_the_original(image, "200x200")) > 45


def test_with_a_watermark_the_original_is_used_so_the_mark_is_not_scaled_twice(
    client, post, original_reads, settings, tmp_path
):
    mark = tmp_path / "mark.png"
    PILImage.new("RGBA", (100, 100), (255, 0, 0, 255)).save(mark)
    settings.WATERMARK_PATH = str(mark)
    image = publish(post, photo(1600, 1200))
    original_reads.clear()

    made = decoded(fetch(client, f"/{image.md5}_200x200"))

    assert original_reads == [image.md5]
    assert made.getpixel((195, 145))[0] > 200  # one mark, in the corner, at 18% of 200x150


def test_a_webp_of_an_image_that_may_have_alpha_is_made_from_a_webp_thumbnail_with_alpha(
    client, post, original_reads
):
    image = publish(post, photo(1600, 1200, fmt="PNG", mode="RGBA"), "image/png")
    original_reads.clear()

    with PILImage.open(io.BytesIO(fetch(client, f"/{image.md5}_200x200.webp"))) as made:
        assert made.mode == "RGBA"
    with PILImage.open(io.BytesIO(fetch(client, f"/{image.md5}_200x200.avif"))) as made:
        assert made.mode == "RGBA"
    assert original_reads == [f"{image.md5}_400x400.webp"] * 2


def test_a_damaged_source_thumbnail_falls_back_to_the_published_original(
    client, post, original_reads
):
    from django.core.files.base import ContentFile

    image = publish(post, photo(1600, 1200))
    source = f"{image.md5}_400x400"
    good = publishing.read_bytes(storages["public"], source)
    storages["public"].save(source, ContentFile(good[: len(good) // 3]))  # cut mid-scan
    original_reads.clear()

    made = decoded(fetch(client, f"/{image.md5}_200x200"))

    assert original_reads == [source, image.md5]
    assert psnr(made, from_the_original(image, "200x200")) > 45


def test_only_thumbnails_of_the_configured_sizes_are_sources(client, post, original_reads):
    image = publish(post, photo(1600, 1200))
    for key in image.renditions:  # only an on-demand 600 px remains, besides the original
        if key != image.md5:
            storages["public"].delete(key)
    Image.objects.filter(pk=image.pk).update(renditions=[image.md5])
    assert fetch(client, f"/{image.md5}_600x600")
    original_reads.clear()

    fetch(client, f"/{image.md5}_200x200")

    assert original_reads == [image.md5]  # not made from the on-demand 600 px one


def test_a_large_original_is_never_decoded_only_its_capped_published_copy(
    client, post, original_reads, settings
):
    settings.PUBLIC_ORIGINAL_MAX_SIDE = 800
    image = publish(post, photo(1600, 1200))
    original_reads.clear()

    made = decoded(fetch(client, f"/{image.md5}_1200x1200"))

    assert original_reads == [image.md5]
    assert made.size == (800, 600)  # as large as the published copy allows


def test_without_a_published_original_a_large_image_is_a_503_not_a_full_decode(
    client, post, original_reads, settings
):
    settings.PUBLIC_ORIGINAL_MAX_SIDE = 800
    image = publish(post, photo(1600, 1200))
    storages["public"].delete(image.md5)
    original_reads.clear()

    response = client.get(f"/{image.md5}_1200x1200")

    assert response.status_code == 503
    assert response.json()["code"] == "source_unavailable"
    assert "original" not in original_reads
