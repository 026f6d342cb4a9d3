"""publishing.jpeg.frame_size: a JPEG's stored size from its frame header, or None."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from publishing.jpeg import frame_size
from tests.photos import photo


def pillow_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


@pytest.mark.parametrize(
    "data",
    [
        photo(640, 480),
        photo(480, 640, progressive=True),
        photo(640, 480, orientation=6, gps=True, icc="adobe_rgb", comment="hi"),
        photo(37, 1001, mode="L"),
    ],
    ids=["baseline", "progressive", "exif-icc-comment", "greyscale"],
)
def test_it_reads_the_size_pillow_reads(data):
    assert frame_size(data) == pillow_size(data)


def test_the_size_is_the_stored_one_not_the_upright_one():
    # Upright 640x480, stored turned a quarter with EXIF orientation 6 to turn it back.
    assert frame_size(photo(640, 480, orientation=6)) == (480, 640)


@pytest.mark.parametrize(
    "data",
    [
        photo(64, 48, fmt="PNG"),
        b"",
        b"\xff\xd8",
        photo(64, 48)[:20],  # cut before the frame header
        b"\xff\xd8\xff\xe0\x00\x01",  # a segment length below 2
        b"\xff\xd8\xff\xda\x00\x08",  # a scan before any frame
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03",  # zero height
    ],
)
def test_anything_else_is_none(data):
    assert frame_size(data) is None
