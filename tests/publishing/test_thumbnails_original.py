from __future__ import annotations

import io

from PIL import Image

from publishing.thumbnails import Size, render_public_original, render_thumbnails
from tests.photos import photo, psnr, upright


def test_the_published_original_is_a_full_size_jpeg_of_the_same_photo():
    rendition = render_public_original(photo(1200, 800))

    assert (rendition.name, rendition.format, rendition.content_type) == (
        "original",
        "JPEG",
        "image/jpeg",
    )
    with Image.open(io.BytesIO(rendition.data)) as img:
        assert img.size == (rendition.width, rendition.height) == (1200, 800)
        assert psnr(img, upright(1200, 800)) > 30


def test_the_published_original_can_be_capped_at_a_longest_side():
    rendition = render_public_original(photo(800, 1200), max_side=600)

    assert (rendition.width, rendition.height) == (400, 600)


def test_a_cap_larger_than_the_photo_does_not_upscale_it():
    rendition = render_public_original(photo(1200, 800), max_side=4000)

    assert (rendition.width, rendition.height) == (1200, 800)


def test_thumbnails_can_come_with_a_capped_original():
    renditions = render_thumbnails(
        photo(1200, 800),
        [Size(100, 100)],
        formats=("JPEG",),
        include_original=True,
        original_max_side=900,
        original_quality=80,
    )

    assert [(r.name, r.width, r.height) for r in renditions] == [
        ("original", 900, 600),
        ("100x100", 100, 67),
    ]
