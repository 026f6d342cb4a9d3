from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from publishing.thumbnails import Size, render_one, render_public_original, render_thumbnails
from tests.photos import flat, photo, psnr, upright


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def centre(data: bytes) -> tuple[int, ...]:
    img = decoded(data)
    return img.getpixel((img.width // 2, img.height // 2))


@pytest.mark.parametrize(
    "colour", [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 100), (128, 128, 128)]
)
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_it_converts_an_embedded_adobe_rgb_profile_to_srgb(colour, fmt):
    data = flat(colour, (64, 64), icc="adobe_rgb")

    rendition = render_one(data, Size(32, 32), fmt)

    assert centre(rendition.data) == pytest.approx(colour, abs=6)


def test_the_patch_really_is_stored_in_another_colour_space():
    # Without colour management pure red would come out as Adobe RGB's (218, 0, 0).
    assert centre(flat((255, 0, 0), (64, 64), icc="adobe_rgb"))[0] < 225


def test_a_photo_with_a_wide_gamut_profile_looks_like_the_srgb_photo():
    (rendition,) = render_thumbnails(
        photo(600, 400, icc="adobe_rgb"), [Size(300, 300)], formats=("JPEG",)
    )

    expected = upright(600, 400).resize((300, 200), Image.Resampling.LANCZOS)
    assert psnr(decoded(rendition.data), expected) > 30


def test_a_cmyk_jpeg_becomes_the_same_photo_in_rgb():
    renditions = render_thumbnails(photo(600, 400, mode="CMYK"), [Size(300, 300)])

    expected = upright(600, 400).resize((300, 200), Image.Resampling.LANCZOS)
    for rendition in renditions:
        with Image.open(io.BytesIO(rendition.data)) as img:
            assert img.mode == "RGB"
        assert psnr(decoded(rendition.data), expected) > 28, rendition


def test_a_16_bit_png_keeps_its_tones_instead_of_clipping_to_white():
    (rendition,) = render_thumbnails(
        photo(600, 400, fmt="PNG", mode="I;16"), [Size(300, 300)], formats=("JPEG",)
    )

    out = np.asarray(decoded(rendition.data), np.float64)
    grey = np.asarray(upright(600, 400).convert("L").resize((300, 200)), np.float64)
    assert abs(out.mean() - grey.mean()) < 3
    assert np.abs(out[..., 0] - out[..., 2]).max() <= 4  # still grey


@pytest.mark.parametrize("mode", ["P", "L"])
def test_palette_and_grey_photos_become_rgb(mode):
    fmt = "PNG" if mode == "P" else "JPEG"

    rendition = render_one(photo(600, 400, fmt=fmt, mode=mode), Size(300, 300))

    expected = upright(600, 400).convert(mode).convert("RGB").resize((300, 200))
    assert psnr(decoded(rendition.data), expected) > 28


def test_the_published_original_of_a_wide_gamut_photo_is_srgb():
    rendition = render_public_original(flat((0, 255, 0), (64, 64), icc="adobe_rgb"))

    assert rendition.format == "JPEG"
    assert centre(rendition.data) == pytest.approx((0, 255, 0), abs=6)


def test_a_broken_embedded_profile_is_treated_as_srgb():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 150, 100)).save(
        buffer, "JPEG", quality=95, icc_profile=b"not an ICC profile at all" * 8
    )

    rendition = render_one(buffer.getvalue(), Size(32, 32))

    assert centre(rendition.data) == pytest.approx((200, 150, 100), abs=6)
