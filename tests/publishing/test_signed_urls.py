"""Signed URLs: any size up to 5000 px, the fill mode, and where a fill crop is placed."""

from __future__ import annotations

import io
import random
import time

import pytest
from PIL import Image as PILImage
from PIL import ImageFilter

from moderation.tasks import moderate_image
from publishing import signing
from publishing.tasks import make_thumbnails
from tests.photos import photo, upright
from tests.publishing.test_on_demand import publish
from tests.uploads.conftest import data_url, use_local_storage
from uploads.models import Image

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keys(settings, tmp_path) -> None:
    use_local_storage(settings, tmp_path)
    settings.URL_SIGNING_KEYS = ["current-key", "previous-key"]


@pytest.fixture
def image(post) -> Image:
    return publish(post, photo(800, 600))


def signed(rest: str, key: str = "current-key", expires: int | None = None) -> str:
    if expires is None:
        return f"/s/{signing.sign(rest, key)}/{rest}"
    return f"/s/{signing.sign(f'{rest}?expires={expires}', key)}/{rest}?expires={expires}"


def size_of(response) -> tuple[int, int]:
    assert response.status_code == 200, response.content
    with PILImage.open(io.BytesIO(response.content)) as img:
        return img.size


def test_the_signature_is_unpadded_urlsafe_base64_of_hmac_sha256():
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") = f7bc83f4...
    sig = signing.sign("The quick brown fox jumps over the lazy dog", "key")
    assert sig == "97yD9DBThCSxMpjmqm-xQ-9NWaFJRhdZl0edvC0aPNg"


def test_a_signed_url_gets_a_size_outside_the_allow_list(client, image):
    assert size_of(client.get(signed(f"{image.md5}_123x77.webp"))) == (103, 77)
    assert client.get(f"/{image.md5}_123x77.webp").status_code == 403


@pytest.mark.parametrize(
    "change",
    [
        lambda url: url.replace("_123x77", "_124x77"),  # another size
        lambda url: url.replace("/s/", "/s/A"),  # another signature
        lambda url: url.replace(".webp", ".avif"),  # another format
    ],
)
def test_a_tampered_url_is_refused_with_a_stable_code(client, image, change):
    response = client.get(change(signed(f"{image.md5}_123x77.webp")))

    assert response.status_code == 403
    assert response.json()["code"] == "bad_signature"


def test_any_configured_key_verifies_so_keys_can_rotate(client, image, settings):
    old = signed(f"{image.md5}_123x77", key="previous-key")
    assert client.get(old).status_code == 200

    settings.URL_SIGNING_KEYS = ["current-key"]  # the old key retired

    assert client.get(old).status_code == 403
    assert client.get(signed(f"{image.md5}_123x77")).status_code == 200


def test_an_expiry_is_signed_and_honoured(client, image):
    now = int(time.time())
    fresh = signed(f"{image.md5}_123x77", expires=now + 60)
    stale = signed(f"{image.md5}_123x77", expires=now - 1)

    assert client.get(fresh).status_code == 200
    assert client.get(stale).json()["code"] == "bad_signature"
    assert client.get(fresh.replace(f"={now + 60}", f"={now + 6000}")).status_code == 403


def test_without_signing_keys_signed_urls_do_not_exist(client, image, settings):
    url = signed(f"{image.md5}_123x77")
    settings.URL_SIGNING_KEYS = []

    assert client.get(url).status_code == 404


def test_a_side_over_5000_is_refused_even_signed(client, image):
    assert client.get(signed(f"{image.md5}_5001x100")).status_code == 400


def test_fill_is_exactly_the_box_in_every_format_even_larger_than_the_image(client, image):
    boxes = [(300, 300), (1000, 200), (90, 400), (2000, 2000)]
    made = {
        (box, ext): size_of(client.get(signed(f"{image.md5}_{box[0]}x{box[1]}_fill{ext}")))
        for box in boxes
        for ext in ("", ".webp", ".avif")
    }
    assert made == {(box, ext): box for box in boxes for ext in ("", ".webp", ".avif")}


def portrait_with_a_subject_near_the_top() -> bytes:
    """600x1000: a soft background with faint grain, a detailed 300x300 subject at y 60-360."""
    rng = random.Random(7)
    background = PILImage.linear_gradient("L").resize((600, 1000)).convert("RGB")
    grain = PILImage.effect_noise((600, 1000), 6).convert("RGB")
    img = PILImage.blend(background, grain, 0.15).filter(ImageFilter.GaussianBlur(1))
    img.paste(upright(300, 300), (150 + rng.randint(-5, 5), 60))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def crop_offset(made: PILImage.Image, scaled: PILImage.Image) -> int:
    """The top row of the window of `scaled` that `made` was cut from (best match)."""

    def error(top: int) -> float:
        window = scaled.crop((0, top, made.width, top + made.height)).convert("L")
        pairs = zip(window.tobytes(), made.convert("L").tobytes(), strict=True)
        return sum((a - b) ** 2 for a, b in pairs)

    return min(range(0, scaled.height - made.height + 1, 5), key=error)


def test_a_square_fill_of_a_portrait_keeps_the_subject_near_the_top(client, post):
    data = portrait_with_a_subject_near_the_top()
    image = publish(post, data)

    response = client.get(signed(f"{image.md5}_300x300_fill"))

    with PILImage.open(io.BytesIO(response.content)) as made:
        made = made.convert("RGB")
    with PILImage.open(io.BytesIO(data)) as original:
        scaled = original.convert("RGB").resize((300, 500))  # cover: 600x1000 at 0.5
    top = crop_offset(made, scaled)
    # The subject is at rows 30-180 of the scaled image; a centred crop (100-400) cuts it.
    assert top <= 30 and top + 300 >= 180


def test_a_focal_point_given_at_upload_places_the_crop(client, post):
    body = {"image": data_url(portrait_with_a_subject_near_the_top()), "focal_point": "0.5,0.9"}
    image_id = post({"data": body}).json()["id"]
    moderate_image(image_id)
    make_thumbnails(image_id)
    image = Image.objects.get(pk=image_id)
    assert (image.focal_x, image.focal_y) == (0.5, 0.9)

    response = client.get(signed(f"{image.md5}_300x300_fill"))

    with PILImage.open(io.BytesIO(response.content)) as made:
        made = made.convert("RGB")
    with PILImage.open(io.BytesIO(publish_data(image))) as original:
        scaled = original.convert("RGB").resize((300, 500))
    assert crop_offset(made, scaled) == 200  # centred at 450 of 500, held inside the image


def publish_data(image: Image) -> bytes:
    from publishing import services

    return services.read_original(image)


@pytest.mark.parametrize("value", ["0.5", "1.5,0.5", "a,b", "nan,0.5", "0.1,0.2,0.3", 7])
def test_a_bad_focal_point_is_a_400_naming_the_field(post, value):
    body = {"image": data_url(photo(200, 150)), "focal_point": value}

    response = post({"data": body})

    assert response.status_code == 400
    assert "focal_point" in response.json()["errors"]["data"]
