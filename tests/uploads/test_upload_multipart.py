"""Multipart uploads, read by uploads.parsers.UploadMultipartParser. These bodies were first
sent to Django's parser, which it replaced: each keeps the status and code it had, except
`junk-after-delimiter` (Django read the junk as a header line and skipped it)."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest
from django.core.files.storage import storages
from django.test import override_settings

from infra.errors import ApiError
from tests.photos import photo
from uploads.models import Image
from uploads.parsers import FORM_ALLOWANCE, UploadMultipartParser, split_form

pytestmark = pytest.mark.django_db

BOUNDARY = "xYzBoUnDaRy"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
DELIMITER = b"--" + BOUNDARY.encode()
END = DELIMITER + b"--\r\n"
JPEG = photo(64, 48)


def part(name: str, data: bytes, filename: str | None = None, kind: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}\r\n"
    if kind:
        head += f"Content-Type: {kind}\r\n"
    return DELIMITER + b"\r\n" + head.encode() + b"\r\n" + data + b"\r\n"


def raw_part(headers: bytes, data: bytes) -> bytes:
    return DELIMITER + b"\r\n" + headers + b"\r\n" + data + b"\r\n"


IMAGE = part("image", JPEG, "cat.jpg", "image/jpeg")


def send(post: Any, body: bytes, content_type: str = CONTENT_TYPE) -> Any:
    return post(body, fmt="raw", content_type=content_type)


def refused(post: Any, body: bytes, status: int, code: str, nothing_left: Any, **kw: Any) -> Any:
    response = send(post, body, **kw)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
    nothing_left()
    return response


def test_a_multipart_upload_stores_the_image_and_its_fields(post):
    response = send(post, IMAGE + part("name", b"My cat") + part("focal_point", b"0.5,0.25") + END)

    assert response.status_code == 202, response.content
    image = Image.objects.get()
    assert (image.name, image.focal_x, image.focal_y) == ("My cat", 0.5, 0.25)
    assert image.byte_size == len(JPEG)
    with storages["default"].open(image.md5, "rb") as stored:
        assert stored.read() == JPEG


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary="a\x01b"',
        'multipart/form-data; boundary="ends in a space "',
    ],
)
def test_a_body_without_a_valid_boundary_is_a_400(post, content_type, assert_nothing_left):
    refused(
        post, IMAGE + END, 400, "malformed_json", assert_nothing_left, content_type=content_type
    )


@pytest.mark.parametrize(
    "body",
    [
        (IMAGE + END)[:2000],  # cut inside the image
        (IMAGE + END)[:40],  # cut inside the part's headers
        IMAGE,  # no delimiter after the image
        IMAGE[:-2],  # not even the line break before it
        b"hello world" * 10,
        (IMAGE + END).replace(BOUNDARY.encode(), b"another"),
    ],
    ids=["in-image", "in-headers", "no-delimiter", "no-line-break", "no-parts", "other-boundary"],
)
def test_a_body_cut_before_the_image_part_ends_gets_the_legacy_body(
    post, body, assert_nothing_left
):
    response = refused(post, body, 400, "missing_fields", assert_nothing_left)
    assert "example_body" in response.json()


def test_a_body_cut_after_the_image_part_ends_is_accepted(post):
    assert send(post, IMAGE + DELIMITER + b"\r\n").status_code == 202
    other = part("image", photo(60, 40), "b.jpg", "image/jpeg")
    assert send(post, other + part("name", b"a second photo") + DELIMITER).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        (IMAGE + END).replace(b"\r\n", b"\n"),  # LF line breaks
        IMAGE + DELIMITER + b"xx" + b"\r\n" + END,  # junk after a delimiter
        raw_part(
            b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\nX-Pad: '
            + b"a" * 2000
            + b"\r\n",
            JPEG,
        )
        + END,  # headers longer than Django's 1024 bytes
        part("image", JPEG[:100] + b"\r\n" + DELIMITER + b"\r\n" + JPEG[100:], "a.jpg") + END,
    ],
    ids=["lf-only", "junk-after-delimiter", "long-headers", "boundary-inside-the-image"],
)
def test_a_body_that_cannot_be_split_into_parts_is_a_400(post, body, assert_nothing_left):
    refused(post, body, 400, "malformed_json", assert_nothing_left)


@pytest.mark.parametrize(
    "body",
    [
        part("photo", JPEG, "cat.jpg", "image/jpeg") + END,  # another field name
        part("image", JPEG) + END,  # no filename: a text field, not a file
        part("image", JPEG, "", "image/jpeg") + END,  # a browser's empty file input
        part("image", JPEG, "..", "image/jpeg") + END,  # Django drops such file names
        raw_part(b"Content-Type: image/jpeg\r\n", JPEG) + END,  # no Content-Disposition
        raw_part(b"", JPEG) + END,  # no headers at all
    ],
    ids=["photo", "text-field", "empty-filename", "dot-dot", "no-disposition", "no-headers"],
)
def test_an_image_not_sent_as_the_image_file_gets_the_legacy_body(post, body, assert_nothing_left):
    refused(post, body, 400, "missing_fields", assert_nothing_left)


def test_an_empty_image_file_is_a_400(post, assert_nothing_left):
    body = part("image", b"", "cat.jpg", "image/jpeg") + END
    refused(post, body, 400, "empty_image", assert_nothing_left)


def test_of_several_image_files_the_last_is_stored_as_before(post):
    small = photo(32, 24)
    response = send(post, IMAGE + part("image", small, "b.jpg", "image/jpeg") + END)

    assert response.status_code == 202
    assert response.json()["byte_size"] == len(small)


def test_other_files_and_fields_are_ignored(post):
    body = part("other", b"x", "x.txt") + IMAGE + part("extra", b"y") + END
    assert send(post, body).status_code == 202


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b"a preamble\r\n" + IMAGE + END + b"an epilogue", ""),
        (IMAGE + part("name", b"first one") + part("name", b"second one") + END, "second one"),
        (IMAGE + part("name", b"caf\xe9 latte") + END, "caf latte"),  # not UTF-8: replaced
        (
            raw_part(
                b"Content-Disposition: form-data; name=image; filename=cat.jpg\r\n"
                b"Content-Type: image/jpeg\r\n",
                JPEG,
            )
            + END,
            "",
        ),
        (
            raw_part(
                b"Content-Disposition: form-data; name=\"image\"; filename*=UTF-8''caf%C3%A9.jpg\r\n",
                JPEG,
            )
            + END,
            "",
        ),
        (
            raw_part(
                b'Content-Disposition: attachment; name="image"; filename="cat.jpg"\r\n'
                b"Content-Transfer-Encoding: base64\r\n",
                base64.encodebytes(JPEG),
            )
            + END,
            "",
        ),
    ],
    ids=["preamble-epilogue", "last-name-wins", "latin-1-name", "unquoted", "rfc2231", "base64"],
)
def test_bodies_that_djangos_parser_accepted_are_accepted(post, body, name):
    response = send(post, body)

    assert response.status_code == 202, response.content
    assert response.json()["name"] == name
    assert response.json()["byte_size"] == len(JPEG)


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=50, DATA_UPLOAD_MAX_NUMBER_FILES=5)
@pytest.mark.parametrize(
    "extra",
    [
        b"".join(part(f"f{n}", b"v") for n in range(51)),
        b"".join(part(f"f{n}", b"v", "v.txt") for n in range(5)),
    ],
    ids=["fields", "files"],
)
def test_more_parts_than_django_allows_are_refused(post, extra, assert_nothing_left):
    refused(post, IMAGE + extra + END, 400, "bad_request", assert_nothing_left)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_fields_larger_than_django_allows_are_a_413(post, assert_nothing_left):
    body = IMAGE + part("description", b"x" * 10_000) + END
    refused(post, body, 413, "payload_too_large", assert_nothing_left)


@override_settings(MAX_IMAGE_BYTES=50_000)
def test_an_image_file_over_the_limit_is_a_413(post, assert_nothing_left):
    big = photo(800, 600, quality=97)
    assert len(big) > 50_001
    body = part("image", big[:50_001], "a.jpg", "image/jpeg") + END
    refused(post, body, 413, "payload_too_large", assert_nothing_left)


class Unread(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


@override_settings(MAX_IMAGE_BYTES=50_000)
def test_a_body_longer_than_the_image_limit_allows_is_refused_before_it_is_read(rf):
    request = rf.post("/", content_type=CONTENT_TYPE)
    request.META["CONTENT_LENGTH"] = str(50_000 + FORM_ALLOWANCE + 1)
    context = {"request": request, "encoding": "utf-8"}

    with pytest.raises(ApiError) as refusal:
        UploadMultipartParser().parse(Unread(), CONTENT_TYPE, context)

    assert refusal.value.code == "payload_too_large"
    request.META["CONTENT_LENGTH"] = str(50_000 + FORM_ALLOWANCE)
    with pytest.raises(AssertionError, match="the body was read"):
        UploadMultipartParser().parse(Unread(), CONTENT_TYPE, context)


def test_a_charset_that_is_not_a_text_encoding_is_a_400(post, assert_nothing_left):
    refused(
        post,
        IMAGE + END,
        400,
        "malformed_json",
        assert_nothing_left,
        content_type=CONTENT_TYPE + "; charset=bz2_codec",
    )


def test_header_lines_that_do_not_matter_are_not_parsed(post):
    junk = b"X-Junk: a; b=c\r\n" * 60
    body = raw_part(junk + b'content-disposition: form-data; name="f"\r\n', b"v") * 900
    start = time.process_time()
    fields, _ = split_form(body + END, BOUNDARY.encode(), "utf-8")
    assert time.process_time() - start < 0.2  # 0.38 s when every line was parsed
    assert fields.getlist("f") == ["v"] * 900

    disposition = b'CONTENT-DISPOSITION: form-data; name="image"; filename="a.jpg"\r\n'
    assert send(post, raw_part(junk[:320] + disposition, JPEG) + END).status_code == 202
