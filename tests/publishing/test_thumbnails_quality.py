"""Resampling quality on detailed content: every thumbnail close to a Lanczos resize of the
fully decoded original, on a smooth photo and on a textured one (fine noise, sharp edges,
text), where box averaging and DCT-scaled decodes lose detail that smooth photos hide."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from publishing.thumbnails import downscaled, parse_sizes
from tests.photos import photo, psnr
from tests.textured import textured

DEFAULT_SIZES = parse_sizes("100x100,400x400,800x800,1600x1600,400xauto")


def reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["textured", "smooth"])
def test_thumbnails_of_12_megapixels_stay_within_45_db_of_a_full_size_lanczos(name):
    data = textured() if name == "textured" else photo(4000, 3000)

    pixels = downscaled(data, DEFAULT_SIZES)

    scores = {size: psnr(img, reference(data, size)) for size, img in pixels.items()}
    assert set(scores) == {(100, 75), (400, 300), (800, 600), (1600, 1200)}
    # 1600 px comes from a decode at half scale: that decode, not the resampling, sets it.
    assert scores[(1600, 1200)] >= 42, scores
    assert all(score >= 45 for size, score in scores.items() if size != (1600, 1200)), scores


def test_the_textured_photo_really_has_detail_a_box_filter_loses():
    data = textured()
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (2000, 1500))
        half = img.convert("RGB")
    boxed = half.reduce(2).reduce(2).resize((400, 300), Image.Resampling.LANCZOS)

    assert psnr(boxed, reference(data, (400, 300))) < 42
