"""Our numpy PDQ gives the reference implementation's hashes bit for bit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from moderation import pdq
from tests.photos import flat, photo

VECTORS = Path(__file__).parent / "pdq_vectors"

# Published with the images by facebook/ThreatExchange (see pdq_vectors/README.md).
REFERENCE = [
    ("rgb.jpeg", "fb4eed46cb8a6c78819ca06b756c541f7b07ef6d02c82fccd00f862166272cda", 100),
    ("LA.png", "accb6d39648035f8125c8ce6ba65007de7b54c67a2d93ef7b8f33b0611306715", 100),
    ("I16.png", "de2ef0e99ecdfc1d248a0eb055f023d1d61e79c3920cbb55d561c02accab1763", 36),
    ("random.png", "ad64cd9875e131a177b1f2a0d6b38ae1de9ea80421e4c51dde1b0363deba3466", None),
]


@pytest.mark.parametrize(("name", "expected", "quality"), REFERENCE)
def test_it_reproduces_the_reference_hash_of_each_published_test_image(name, expected, quality):
    with PILImage.open(VECTORS / name) as img:
        result = pdq.pdq_of_image(img.convert("RGB"))

    assert result.hex == expected
    if quality is not None:
        assert result.quality == quality


def test_a_hash_survives_the_trip_through_hex():
    value = pdq.pdq_of_image(PILImage.open(io.BytesIO(photo(640, 480)))).hash

    assert pdq.from_hex(pdq.to_hex(value)) == value
    assert len(pdq.to_hex(value)) == 64
    assert bin(value).count("1") == 128  # one bit per coefficient above the median


@pytest.mark.parametrize("text", ["", "abc", "g" * 64, "0" * 63, "0" * 65, " " + "0" * 63])
def test_anything_but_64_hex_digits_is_not_a_hash(text):
    with pytest.raises(ValueError, match="not a 64-digit hex PDQ hash"):
        pdq.from_hex(text)


def test_a_flat_image_has_quality_zero_and_a_detailed_photo_full_quality():
    with PILImage.open(io.BytesIO(flat("red", (256, 256)))) as img:
        assert pdq.pdq_of_image(img).quality == 0
    with PILImage.open(io.BytesIO(photo(800, 600, subject="chelsea"))) as img:
        assert pdq.pdq_of_image(img).quality == 100


def test_an_image_too_small_to_hash_gets_the_empty_hash():
    assert pdq.pdq_of_luma(np.zeros((4, 100), dtype=np.float32)) == pdq.PDQ(0, 0)


def test_a_recompressed_copy_is_near_and_another_photo_is_far():
    original = photo(1200, 800, subject="coffee")
    with PILImage.open(io.BytesIO(original)) as img:
        out = io.BytesIO()
        img.save(out, "JPEG", quality=50)
        a = pdq.pdq_of_image(img).hash
    b = pdq.pdq_of_image(PILImage.open(io.BytesIO(out.getvalue()))).hash
    c = pdq.pdq_of_image(PILImage.open(io.BytesIO(photo(1200, 800, subject="rocket")))).hash

    assert pdq.distance(a, b) <= 10
    assert pdq.distance(a, c) > 64
