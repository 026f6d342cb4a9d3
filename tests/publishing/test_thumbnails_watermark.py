from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from publishing.thumbnails import Size, render_one, render_thumbnails
from tests.photos import photo

RED_MARK = Image.new("RGBA", (100, 100), (255, 0, 0, 255))


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), np.int16)


def test_it_puts_the_watermark_in_the_south_east_corner_at_18_percent():
    plain = pixels(render_one(photo(1200, 800), Size(400, 400)).data)

    marked = pixels(render_one(photo(1200, 800), Size(400, 400), watermark=RED_MARK).data)

    # 400x267 thumbnail: the square mark fits inside 72x48, so it is 48x48 in the corner.
    corner = marked[267 - 44 :, 400 - 44 :]
    assert corner[..., 0].mean() > 230
    assert corner[..., 1:].mean() < 25
    # JPEG blocks are 16 px at most: beyond one block of margin nothing else changes.
    untouched = np.ones(plain.shape[:2], bool)
    untouched[267 - 48 - 16 :, 400 - 48 - 16 :] = False
    assert np.abs(marked - plain)[untouched].max() <= 1


def test_it_scales_a_transparent_watermark_and_keeps_the_photo_around_it():
    mark = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    mark.paste((0, 0, 255, 255), (100, 0, 200, 100))

    marked = pixels(render_one(photo(1200, 800), Size(800, 800), watermark=mark).data)
    plain = pixels(render_one(photo(1200, 800), Size(800, 800)).data)

    # 800x533: the 2:1 mark fits inside 144x95, i.e. 144x72; its right half is blue.
    assert marked[533 - 60 :, 800 - 60 :, 2].mean() > 230
    left_half = (slice(533 - 60, 533), slice(800 - 140, 800 - 84))
    assert np.abs(marked[left_half] - plain[left_half]).mean() < 3


@pytest.mark.parametrize("size", [Size(100, 100), Size(1000, 100), Size(100, None)])
def test_it_leaves_out_the_watermark_unless_both_box_sides_exceed_100_px(size):
    marked = render_one(photo(1200, 800), size, watermark=RED_MARK)

    assert marked.data == render_one(photo(1200, 800), size).data


def test_an_auto_side_counts_as_the_side_it_fits_to():
    marked = pixels(render_one(photo(1200, 800), Size(None, 300), watermark=RED_MARK).data)

    assert marked.shape[:2] == (300, 450)
    assert marked[-20:, -20:, 0].mean() > 230


def test_there_is_no_watermark_by_default():
    renditions = render_thumbnails(photo(1200, 800), [Size(800, 800)], formats=("JPEG",))

    corner = pixels(renditions[0].data)[-20:, -20:]
    assert corner[..., 0].mean() - corner[..., 1:].mean() < 30  # not a red corner


def test_webp_thumbnails_get_the_watermark_too():
    (rendition,) = render_thumbnails(
        photo(1200, 800), [Size(400, 400)], formats=("WEBP",), watermark=RED_MARK
    )

    corner = pixels(rendition.data)[267 - 40 :, 400 - 40 :]
    assert corner[..., 0].mean() > 220
    assert corner[..., 1:].mean() < 35
