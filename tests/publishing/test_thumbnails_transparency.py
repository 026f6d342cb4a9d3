from __future__ import annotations

import io

import pytest
from PIL import Image

from publishing.thumbnails import Size, render_public_original, render_thumbnails
from tests.photos import photo, psnr, upright

MAGENTA = (255, 0, 255)


def opened(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img


@pytest.mark.parametrize(("mode", "fmt"), [("RGBA", "PNG"), ("LA", "PNG"), ("RGBA", "WEBP")])
def test_it_flattens_transparency_onto_the_background_for_jpeg(mode, fmt):
    data = photo(600, 400, fmt=fmt, mode=mode)

    (rendition,) = render_thumbnails(data, [Size(300, 300)], formats=("JPEG",), background=MAGENTA)

    out = opened(rendition.data)
    assert out.mode == "RGB"
    assert out.getpixel((2, 2)) == pytest.approx(MAGENTA, abs=8)  # corner outside the ellipse
    expected = upright(600, 400).convert(mode[:-1] or "L").convert("RGB").resize((300, 200))
    middle = (100, 60, 200, 140)
    assert psnr(out.crop(middle), expected.crop(middle)) > 28


def test_it_keeps_transparency_for_webp():
    data = photo(600, 400, fmt="PNG", mode="RGBA")

    (rendition,) = render_thumbnails(data, [Size(300, 300)], formats=("WEBP",))

    out = opened(rendition.data)
    assert out.mode == "RGBA"
    assert out.getpixel((2, 2))[3] == 0
    assert out.getpixel((150, 100))[3] == 255


def test_a_gif_with_a_transparent_colour_is_flattened_for_jpeg():
    img = Image.new("P", (200, 100), 0)
    img.putpalette([0, 0, 0, 255, 255, 0] + [0] * 762)
    img.paste(1, (50, 0, 150, 100))
    buffer = io.BytesIO()
    img.save(buffer, "GIF", transparency=0)

    (rendition,) = render_thumbnails(buffer.getvalue(), [Size(100, 100)], formats=("JPEG",))

    out = opened(rendition.data)
    assert out.getpixel((5, 25)) == pytest.approx((255, 255, 255), abs=8)
    assert out.getpixel((50, 25)) == pytest.approx((255, 255, 0), abs=8)


def test_the_published_original_of_a_transparent_photo_is_a_png_with_alpha():
    rendition = render_public_original(photo(600, 400, fmt="PNG", mode="RGBA"))

    out = opened(rendition.data)
    assert (rendition.format, rendition.content_type, out.mode) == ("PNG", "image/png", "RGBA")
    assert out.getpixel((1, 1))[3] == 0


def test_the_published_original_of_an_opaque_png_is_a_jpeg():
    rendition = render_public_original(photo(600, 400, fmt="PNG"))

    assert (rendition.format, opened(rendition.data).format) == ("JPEG", "JPEG")
