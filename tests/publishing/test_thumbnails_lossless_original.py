"""The published original of a plain JPEG is its own compressed pixels without metadata: no
generation loss, no full-size decode. Anything needing a change of pixels is re-encoded."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageCms

from publishing.jpeg import strip_metadata
from publishing.thumbnails import Size, render_public_original, render_thumbnails
from tests.hostile.files import mpo
from tests.photos import photo
from tests.publishing.test_thumbnails_metadata import LEAKS, SECRET, TRAILER, assert_stripped

IPTC = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x10IPTC-BYLINE-SECRET"


def scans(data: bytes) -> bytes:
    """Everything from the first scan header to the end marker: the compressed pixels."""
    start = data.index(b"\xff\xda")
    return data[start : data.index(b"\xff\xd9", start) + 2]


def with_segment(data: bytes, marker: int, payload: bytes, *, before: bytes = b"") -> bytes:
    """`data` with a segment inserted after SOI, or before the first occurrence of `before`."""
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    at = data.index(before) if before else 2
    return data[:at] + segment + data[at:]


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def full_of_metadata(**options: object) -> bytes:
    data = photo(600, 400, gps=True, comment=SECRET, xmp=True, **options)  # type: ignore[arg-type]
    return with_segment(data, 0xED, IPTC) + TRAILER


@pytest.mark.parametrize("progressive", [False, True])
def test_a_plain_jpeg_is_published_with_its_scan_data_untouched_and_no_metadata(progressive):
    data = full_of_metadata(progressive=progressive)
    assert all(leak in data for leak in LEAKS) and b"IPTC-BYLINE" in data

    original = render_public_original(data)

    assert scans(original.data) == scans(data)
    assert pixels(original.data) == pixels(data)
    assert_stripped(original.data, "JPEG")
    assert b"IPTC-BYLINE" not in original.data
    assert (original.format, original.width, original.height) == ("JPEG", 600, 400)


def test_a_comment_between_progressive_scans_is_removed_and_the_scans_kept():
    data = photo(600, 400, progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    hidden = data[:second_scan] + b"\xff\xfe\x00\x08HIDDEN" + data[second_scan:]

    stripped = strip_metadata(hidden)

    assert stripped is not None and b"HIDDEN" not in stripped
    assert stripped == strip_metadata(data)
    assert pixels(stripped) == pixels(data)


def test_a_jfif_thumbnail_is_dropped_and_the_density_kept():
    plain = photo(300, 200)
    assert plain[2:11] == b"\xff\xe0\x00\x10JFIF\x00"  # Pillow's JFIF header, no thumbnail
    thumbnail = bytes(range(256)) * 3  # a 16x16 RGB preview, as JFIF allows
    jfif = b"JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x10\x10" + thumbnail
    data = with_segment(plain[:2] + plain[20:], 0xE0, jfif)

    stripped = strip_metadata(data)

    assert stripped is not None
    assert thumbnail not in stripped
    assert stripped[2:20] == b"\xff\xe0\x00\x10JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x00\x00"
    assert pixels(stripped) == pixels(plain)


def test_an_srgb_tagged_jpeg_is_published_as_is_without_its_profile():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.open(io.BytesIO(photo(600, 400)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, icc_profile=srgb)
    data = out.getvalue()

    original = render_public_original(data)

    assert scans(original.data) == scans(data)
    assert b"ICC_PROFILE" not in original.data


@pytest.mark.parametrize(
    "case",
    [
        {"orientation": 6},  # must be rotated
        {"icc": "adobe_rgb"},  # must be converted to sRGB
        {"mode": "CMYK"},  # browsers show CMYK JPEGs badly
        {"mode": "L"},  # published copies are RGB
    ],
    ids=lambda case: next(iter(case)),
)
def test_a_jpeg_needing_new_pixels_is_re_encoded_and_still_stripped(case):
    data = full_of_metadata(**case)

    original = render_public_original(data)

    assert scans(original.data) != scans(data)
    assert_stripped(original.data, "JPEG")
    with Image.open(io.BytesIO(original.data)) as img:
        assert img.mode == "RGB"


def test_a_jpeg_larger_than_the_cap_is_re_encoded_smaller():
    data = photo(1200, 800)

    original = render_public_original(data, max_side=600)

    assert (original.width, original.height) == (600, 400)
    assert scans(original.data) != scans(data)


def test_only_the_first_picture_of_a_multi_picture_jpeg_is_published():
    data = mpo()
    first_end = data.index(b"\xff\xd9") + 2

    original = render_public_original(data)

    assert scans(original.data) == scans(data[:first_end])
    assert b"MPF" not in original.data
    assert_stripped(original.data, "JPEG")
    with Image.open(io.BytesIO(original.data)) as img:
        assert img.format == "JPEG"


@pytest.mark.parametrize(
    "broken",
    [
        lambda data: data[: len(data) // 2],  # truncated: no end marker
        lambda data: data.replace(b"\xff\xc0", b"\xff\xc9", 1),  # arithmetic-coded frame
        lambda data: data[:2] + b"\x00" + data[2:],  # garbage between segments
    ],
    ids=["truncated", "arithmetic", "garbage"],
)
def test_the_parser_refuses_what_it_does_not_fully_understand(broken):
    assert strip_metadata(broken(photo(300, 200))) is None


def test_thumbnails_rendered_with_an_as_is_original_decode_at_the_thumbnails_scale():
    data = photo(1200, 800)

    renditions = render_thumbnails(data, [Size(100, 100)], formats=("JPEG",), include_original=True)

    assert [(r.name, r.width, r.height) for r in renditions] == [
        ("original", 1200, 800),
        ("100x100", 100, 67),
    ]
    assert scans(renditions[0].data) == scans(data)
