from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from publishing.thumbnails import Size, render_one, render_public_original, render_thumbnails
from tests.photos import XMP_PACKET, exif_of, has_gps, heic, photo

SECRET = "secret comment from the camera"
TRAILER = b"\xff\xd9TRAILING-DATA-THE-UPLOADER-HID"
# Byte strings long enough never to appear by chance in compressed image data.
LEAKS = (b"Exif\0\0", b"http://ns.adobe.com/xap", b"PinsterCam", SECRET.encode(), b"TRAILING-DATA")


def jpeg_segments(data: bytes) -> tuple[list[int], bytes]:
    """Markers of the segments before the first scan, and whatever follows the end marker."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while data[pos + 1] != 0xDA:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    end = data.rindex(b"\xff\xd9")
    return markers, data[end + 2 :]


def webp_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data)  # nothing after the RIFF
    chunks, pos = [], 12
    while pos < len(data):
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append(data[pos : pos + 4])
        pos += 8 + size + size % 2
    return chunks


def png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + size
    return chunks


def assert_stripped(data: bytes, fmt: str) -> None:
    for leak in LEAKS:
        assert leak not in data
    if fmt == "JPEG":
        markers, after_end = jpeg_segments(data)
        # APP0 (JFIF), quantisation, Huffman, frame header (baseline or progressive) only: no
        # APP1 (EXIF/XMP), APP2 (ICC), APP13 (IPTC) or COM (0xFE) segment.
        assert set(markers) <= {0xE0, 0xDB, 0xC4, 0xC0, 0xC2, 0xDD}, [hex(m) for m in markers]
        assert after_end == b""
    elif fmt == "WEBP":
        assert set(webp_chunks(data)) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}
    else:
        assert set(png_chunks(data)) <= {b"IHDR", b"IDAT", b"IEND", b"pHYs"}
    with Image.open(io.BytesIO(data)) as img:
        assert not img.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment", "XML:com.adobe.xmp"} & set(img.info)


def everything_in(data: bytes) -> list:
    return [
        *render_thumbnails(data, [Size(400, 400), Size(100, 100)], include_original=True),
        render_public_original(data, max_side=300),
        render_one(data, Size(200, 200), "WEBP"),
    ]


def test_the_test_photo_really_carries_every_kind_of_metadata():
    data = photo(
        600,
        400,
        orientation=6,
        gps=True,
        icc="adobe_rgb",
        comment=SECRET,
        xmp=True,
        trailer=TRAILER,
    )

    assert has_gps(data)
    assert exif_of(data)[0x0112] == 6
    assert XMP_PACKET in data
    assert SECRET.encode() in data
    assert data.endswith(TRAILER)
    markers, after_end = jpeg_segments(data)
    assert {0xE1, 0xE2, 0xFE} <= set(markers)
    assert after_end


@pytest.mark.parametrize("icc", [None, "adobe_rgb"])
def test_no_metadata_survives_in_any_output_of_a_jpeg(icc):
    data = photo(
        600, 400, orientation=6, gps=True, icc=icc, comment=SECRET, xmp=True, trailer=TRAILER
    )

    for rendition in everything_in(data):
        assert_stripped(rendition.data, rendition.format)
        assert not has_gps(rendition.data)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_no_metadata_survives_from_a_png_or_webp_with_alpha(fmt):
    data = photo(600, 400, fmt=fmt, mode="RGBA", gps=True, icc="adobe_rgb", xmp=True)

    renditions = everything_in(data)

    assert "PNG" in {r.format for r in renditions}
    for rendition in renditions:
        assert_stripped(rendition.data, rendition.format)


def test_no_metadata_survives_from_heic():
    assert has_gps(heic(600, 400))  # the source has it
    for rendition in everything_in(heic(600, 400)):
        assert_stripped(rendition.data, rendition.format)
