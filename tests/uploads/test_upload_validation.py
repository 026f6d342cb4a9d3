"""Every limit and refused format: a clear JSON error with a stable code, and nothing left."""

from __future__ import annotations

import base64
import io
import json

import pytest
from django.test import override_settings
from PIL import Image as PILImage

from tests.photos import animated, heic, photo
from tests.uploads.conftest import data_url
from uploads.models import Image

pytestmark = pytest.mark.django_db


def refused(post, body, status, code, assert_nothing_left, **kwargs):
    response = post(body, **kwargs)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
    assert isinstance(response.json()["error"], str)
    assert_nothing_left()
    return response


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"", "missing_fields"),
        (b"[1, 2, 3]", "malformed_json"),
        (b'"just a string"', "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
        (b'{"data": {"image": "' + b"\xff\xfe" + b'"}}', "malformed_json"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(post, raw, code, assert_nothing_left):
    refused(post, raw, 400, code, assert_nothing_left, fmt="raw", content_type="application/json")


def test_a_wrong_request_content_type_is_a_415(post, assert_nothing_left):
    refused(
        post,
        b"<xml/>",
        415,
        "unsupported_media_type",
        assert_nothing_left,
        fmt="raw",
        content_type="application/xml",
    )


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (12345, "invalid_image"),
        (["a"], "invalid_image"),
        ("data:image/jpeg,rawbytes", "invalid_data_url"),
        ("data:image/jpeg;base64", "invalid_data_url"),
        ("data:image/jpeg;base64,@@@@", "invalid_base64"),
        ("data:image/jpeg;base64,/9j/4A AQ", "invalid_base64"),
        ("data:image/jpeg;base64,/9j_4A-Q", "invalid_base64"),
        ("data:image/jpeg;base64,/9j/4AA", "invalid_base64"),
        ("data:image/jpeg;base64,", "empty_image"),
    ],
)
def test_a_malformed_image_field_is_a_400(post, image, code, assert_nothing_left):
    refused(post, {"data": {"image": image}}, 400, code, assert_nothing_left)


def test_a_data_url_with_parameters_is_accepted(post, jpeg):
    url = "data:image/jpeg;name=cat.jpg;base64," + base64.b64encode(jpeg).decode()
    assert post({"data": {"image": url}}).status_code == 202


def test_a_data_url_of_a_non_image_type_is_a_415(post, jpeg, assert_nothing_left):
    refused(
        post,
        {"data": {"image": data_url(jpeg, "text/html")}},
        415,
        "unsupported_image_format",
        assert_nothing_left,
    )


def test_a_png_declared_as_jpeg_is_accepted_as_a_png_and_the_declared_type_recorded(post):
    """Browsers derive a data URL's type from the file's extension: the bytes decide."""
    png = photo(200, 200, fmt="PNG")

    response = post({"data": {"image": data_url(png, "image/jpeg")}})

    assert response.status_code == 202, response.content
    image = Image.objects.get(pk=response.json()["id"])
    assert image.format == "PNG"
    uploaded = image.events.get(kind="uploaded")
    assert uploaded.details["declared_format"] == "JPEG"


def test_a_matching_declared_type_records_no_declared_format(post, jpeg):
    response = post({"data": {"image": data_url(jpeg, "image/jpeg")}})

    uploaded = Image.objects.get(pk=response.json()["id"]).events.get(kind="uploaded")
    assert "declared_format" not in uploaded.details


@override_settings(MAX_IMAGE_BYTES=50_000)
def test_an_image_over_the_byte_limit_is_refused_before_decoding(post, assert_nothing_left):
    big = photo(1200, 800, quality=95)
    assert len(big) > 50_000
    refused(post, {"data": {"image": data_url(big)}}, 413, "payload_too_large", assert_nothing_left)


@override_settings(MAX_REQUEST_BYTES=10_000)
def test_a_body_over_the_request_limit_is_a_json_413_from_its_content_length(
    post, jpeg, assert_nothing_left
):
    body = json.dumps({"data": {"image": data_url(jpeg)}}).encode()
    refused(
        post,
        body,
        413,
        "payload_too_large",
        assert_nothing_left,
        fmt="raw",
        content_type="application/json",
    )


@override_settings(MAX_IMAGE_BYTES=50_000)
def test_a_multipart_file_over_the_limit_is_a_413(post, assert_nothing_left):
    from django.core.files.uploadedfile import SimpleUploadedFile

    big = SimpleUploadedFile("big.jpg", photo(1200, 800, quality=95), content_type="image/jpeg")
    refused(post, {"image": big}, 413, "payload_too_large", assert_nothing_left, fmt="multipart")


def test_a_multipart_request_without_an_image_part_gets_the_legacy_body(post, assert_nothing_left):
    response = refused(
        post, {"name": "no image"}, 400, "missing_fields", assert_nothing_left, fmt="multipart"
    )
    assert "example_body" in response.json()


def _encode(image: PILImage.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


REFUSED_FORMATS = {
    "TIFF": lambda: _encode(PILImage.new("RGB", (64, 64)), "TIFF"),
    "BMP": lambda: _encode(PILImage.new("RGB", (64, 64)), "BMP"),
    "ICO": lambda: _encode(PILImage.new("RGB", (64, 64)), "ICO"),
    "PDF": lambda: _encode(PILImage.new("RGB", (64, 64)), "PDF"),
    "SVG": lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "HTML": lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>",
    "ZIP": lambda: b"PK\x03\x04" + b"\x00" * 100,
    "random bytes": lambda: bytes(range(256)) * 8,
}


@pytest.mark.parametrize("kind", sorted(REFUSED_FORMATS))
def test_formats_other_than_the_allowed_ones_are_a_415(post, kind, assert_nothing_left):
    data = REFUSED_FORMATS[kind]()
    refused(
        post,
        {"data": {"image": base64.b64encode(data).decode()}},
        415,
        "unsupported_image_format",
        assert_nothing_left,
    )


def test_a_truncated_jpeg_is_a_422(post, assert_nothing_left):
    jpeg = photo(800, 600)
    refused(
        post,
        {"data": {"image": data_url(jpeg[: len(jpeg) // 2])}},
        422,
        "corrupt_image",
        assert_nothing_left,
    )


def test_a_truncated_png_is_a_422(post, assert_nothing_left):
    png = photo(300, 200, fmt="PNG")
    refused(
        post,
        {"data": {"image": data_url(png[: len(png) * 2 // 3], "image/png")}},
        422,
        "corrupt_image",
        assert_nothing_left,
    )


def test_a_png_with_a_broken_checksum_is_a_422(post, assert_nothing_left):
    png = bytearray(photo(300, 200, fmt="PNG"))
    idat = png.find(b"IDAT")
    png[idat + 20] ^= 0xFF
    refused(
        post,
        {"data": {"image": data_url(bytes(png), "image/png")}},
        422,
        "corrupt_image",
        assert_nothing_left,
    )


@override_settings(MAX_IMAGE_PIXELS=100_000)
def test_an_image_over_the_pixel_limit_is_a_422(post, assert_nothing_left):
    refused(
        post,
        {"data": {"image": data_url(photo(400, 300))}},
        422,
        "image_too_large",
        assert_nothing_left,
    )


def test_a_header_only_decompression_bomb_is_a_422(post, assert_nothing_left):
    png = bytearray(_encode(PILImage.new("L", (64, 64)), "PNG"))
    png[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100000 x 100000
    import zlib

    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    refused(
        post,
        {"data": {"image": data_url(bytes(png), "image/png")}},
        422,
        "image_too_large",
        assert_nothing_left,
    )


def test_a_real_decompression_bomb_is_a_422(post, assert_nothing_left):
    bomb = _encode(PILImage.new("1", (12_000, 12_000)), "PNG", optimize=True)
    assert len(bomb) < 100_000
    refused(
        post,
        {"data": {"image": data_url(bomb, "image/png")}},
        422,
        "image_too_large",
        assert_nothing_left,
    )


@override_settings(MAX_FRAMES=5)
def test_an_animation_with_too_many_frames_is_a_422(post, assert_nothing_left):
    refused(
        post,
        {"data": {"image": data_url(animated("GIF", frames=8), "image/gif")}},
        422,
        "too_many_frames",
        assert_nothing_left,
    )


def test_a_tiny_image_is_a_422(post, assert_nothing_left):
    tiny = _encode(PILImage.new("RGB", (1, 1)), "PNG")
    refused(
        post,
        {"data": {"image": data_url(tiny, "image/png")}},
        422,
        "image_too_small",
        assert_nothing_left,
    )


@pytest.mark.parametrize(
    ("make", "declared", "family"),
    [
        (lambda: photo(640, 480, progressive=True), "image/jpeg", "JPEG"),
        (lambda: photo(640, 480, mode="CMYK"), "image/jpeg", "JPEG"),
        (lambda: photo(320, 240, fmt="PNG", mode="I;16"), "image/png", "PNG"),
        (lambda: photo(320, 240, fmt="WEBP"), "image/webp", "WEBP"),
        (lambda: animated("GIF"), "image/gif", "GIF"),
        (lambda: heic(320, 240), "image/heic", "HEIF"),
    ],
)
def test_every_allowed_kind_of_photo_is_accepted(post, make, declared, family):
    response = post({"data": {"image": data_url(make(), declared)}})

    assert response.status_code == 202, response.content
    assert Image.objects.get().format == family
