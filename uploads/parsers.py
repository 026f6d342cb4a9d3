"""Request parsing that fails cleanly: malformed, deeply nested or non-object JSON is a 400, and
so is a multipart body that cannot be split into parts."""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import io
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files import uploadhandler
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.http import QueryDict
from django.http.multipartparser import MultiPartParser
from django.utils.datastructures import MultiValueDict
from django.utils.http import parse_header_parameters
from rest_framework.parsers import BaseParser, DataAndFiles, JSONParser

from infra.errors import ApiError, too_large


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            raise ApiError("empty_body", "The request body is empty.")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError("malformed_json", "The request body is not valid JSON.") from None
        except RecursionError:
            raise ApiError("malformed_json", "The JSON is nested too deeply.") from None
        if not isinstance(data, dict):
            raise ApiError("malformed_json", "The request body must be a JSON object.")
        return data


# Multipart bodies are parsed in chunks of the smallest chunk_size among the upload handlers
# (Django's default 64 KiB): a 4 MB photo takes 64 rounds through gunicorn's body reader and
# Django's boundary search. 1 MiB chunks: 41.7 and 47.8 ms of web CPU per 4 MB multipart
# upload against 47.2 and 49.8 with 64 KiB (alternating runs of 40 uploads through gunicorn,
# PostgreSQL and moto S3). Memory is not the issue: uploads are held in memory whole anyway.
# (The upload itself is parsed by UploadMultipartParser; these serve any other form.)
UPLOAD_CHUNK_BYTES = 1024 * 1024


class MemoryFileUploadHandler(uploadhandler.MemoryFileUploadHandler):
    chunk_size = UPLOAD_CHUNK_BYTES


class TemporaryFileUploadHandler(uploadhandler.TemporaryFileUploadHandler):
    chunk_size = UPLOAD_CHUNK_BYTES


# The upload's multipart body is read whole and split with bytes.find. Django's parser streams
# it through its upload handlers: a copy per read, per boundary search and per handler write,
# and another for upload.read(). It took 6.3-7.6 ms of the 25-26 ms of CPU of a 5 MB multipart
# upload (bench/upload.py's app, timed per phase), this 2.1-2.3: one search through the image
# for the next boundary (1.2-1.7 ms with the bench's 14-character boundary, less with the
# longer ones browsers send) and one copy of it. The body is in memory either way: the
# middleware bounds it by its Content-Length, and Django held uploads in memory whole. What a
# part is (field or file, its name, its type) follows Django's parser, limits included.
FORM_ALLOWANCE = 64 * 1024  # the other fields and the part headers around the image
PART_HEADER_BYTES = 1024  # Django's MAX_TOTAL_HEADER_SIZE: a part's headers and blank line


class UploadMultipartParser(BaseParser):
    media_type = "multipart/form-data"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        context = parser_context or {}
        boundary = multipart_boundary(media_type or "")
        encoding = text_encoding(context)
        request = context.get("request")
        if request is not None and declared_length(request.META) > (
            settings.MAX_IMAGE_BYTES + FORM_ALLOWANCE
        ):
            raise too_large()  # before reading the body
        body = stream.read() if stream is not None else b""
        return DataAndFiles(*split_form(body, boundary, encoding))


def declared_length(meta: dict[str, Any]) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # then Django reads no body at all


def text_encoding(context: dict[str, Any]) -> str:
    """The charset the fields are decoded with; one that is not a text codec (bz2_codec would
    inflate the fields after their size was checked) is refused, as DRF refuses it."""
    encoding = context.get("encoding") or settings.DEFAULT_CHARSET
    try:
        "".encode(encoding)
    except (LookupError, UnicodeError):
        raise malformed(f"the charset {encoding!r} is not a text encoding") from None
    return str(encoding)


def multipart_boundary(media_type: str) -> bytes:
    try:
        media_type.encode("ascii")
    except UnicodeEncodeError:
        raise malformed("its Content-Type is not ASCII") from None
    boundary = parse_header_parameters(media_type)[1].get("boundary")
    if not boundary or not MultiPartParser.boundary_re.fullmatch(boundary):
        raise malformed("it has no valid boundary")
    return boundary.encode("ascii")


def malformed(why: str) -> ApiError:
    """The code Django's parser errors had (through DRF's ParseError); clients branch on it."""
    return ApiError("malformed_json", f"The multipart body is not valid: {why}.")


def split_form(body: bytes, boundary: bytes, encoding: str) -> tuple[QueryDict, MultiValueDict]:
    """The body's fields and files. A part cut short by the end of the body is dropped, as
    Django's parser drops a file cut short; so is a part without a Content-Disposition."""
    form = Form(encoding)
    delimiter = b"--" + boundary
    start = body.find(delimiter)  # what comes before it is a preamble (RFC 2046)
    while start != -1:
        after = start + len(delimiter)
        tail = body[after : after + 2]
        if tail == b"--" or len(tail) < 2:
            break  # the close delimiter, or a body cut after a delimiter
        if tail != b"\r\n":
            raise malformed("a boundary is not followed by a line break")
        end = body.find(b"\r\n" + delimiter, after)
        if end == -1:
            break
        head_end = body.find(b"\r\n\r\n", after, min(end, after + PART_HEADER_BYTES))
        if head_end != -1:
            form.add(part_headers(body[after:head_end]), body[head_end + 4 : end])
        elif end - after < PART_HEADER_BYTES:
            form.count_field()  # a part without headers: Django counts and skips it
        else:
            raise malformed("the headers of a part are too long")
        start = end + 2
    return form.fields, form.files


# The headers a part's meaning depends on. Django parsed every line (email.message, ~6 us a
# line with parameters): 900 parts of 100 such junk lines cost 0.58 s of CPU per request.
READ_HEADERS = frozenset({b"content-disposition", b"content-type", b"content-transfer-encoding"})


def part_headers(block: bytes) -> dict[str, tuple[str, dict[str, str]]]:
    """Django's reading of the headers that matter: each line parsed on its own, a line it
    cannot read skipped."""
    headers: dict[str, tuple[str, dict[str, str]]] = {}
    for line in block.split(b"\r\n"):
        if line.split(b":", 1)[0].lstrip().lower() not in READ_HEADERS:
            continue
        try:
            value, params = parse_header_parameters(line.decode())
            name, value = value.split(":", 1)
        except ValueError:  # UnicodeDecodeError too
            continue
        headers[name] = (value.strip(), params)
    return headers


class Form:
    """Fields and files as Django's parser collects them, with its limits on both."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.fields = QueryDict(mutable=True, encoding=encoding)
        self.files: MultiValueDict[str, InMemoryUploadedFile] = MultiValueDict()
        self.field_count = self.file_count = self.field_bytes = 0

    def add(self, headers: dict[str, tuple[str, dict[str, str]]], data: bytes) -> None:
        disposition = headers.get("content-disposition", ("", {}))[1]
        filename = disposition.get("filename")
        if not filename:
            self.count_field()
        if "name" not in disposition:
            return
        name = disposition["name"].strip()
        encoded = headers.get("content-transfer-encoding", ("", {}))[0] == "base64"
        if filename:
            self.add_file(name, filename, headers.get("content-type", ("", {})), data, encoded)
        else:
            self.add_field(name, data, encoded)

    def count_field(self) -> None:
        self.field_count += 1
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        if limit is not None and self.field_count > limit:
            raise TooManyFieldsSent("More fields than DATA_UPLOAD_MAX_NUMBER_FIELDS.")

    def add_field(self, name: str, data: bytes, encoded: bool) -> None:
        self.field_bytes += len(data) + len(name) + 2
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and self.field_bytes > limit:
            raise RequestDataTooBig("Fields larger than DATA_UPLOAD_MAX_MEMORY_SIZE.")
        if encoded:
            with contextlib.suppress(binascii.Error):  # Django keeps the field as sent
                data = base64.b64decode(data)
        self.fields.appendlist(name, data.decode(self.encoding, errors="replace"))

    def add_file(
        self,
        name: str,
        filename: str,
        content_type: tuple[str, dict[str, str]],
        data: bytes,
        encoded: bool,
    ) -> None:
        self.file_count += 1
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        if limit is not None and self.file_count > limit:
            raise TooManyFilesSent("More files than DATA_UPLOAD_MAX_NUMBER_FILES.")
        filename = safe_file_name(filename)
        if not filename:
            return
        if encoded:
            data = decode_base64_file(data)
        kind, params = content_type
        extra = {key: value.encode() for key, value in params.items()}  # as Django gives them
        upload = InMemoryUploadedFile(
            io.BytesIO(data), name, filename, kind, len(data), params.get("charset"), extra
        )
        self.files.appendlist(name, upload)


def safe_file_name(name: str) -> str:
    """Django's sanitize_file_name: the last path segment, printable; '' if nothing is left."""
    name = html.unescape(name).rsplit("/")[-1].rsplit("\\")[-1]
    name = "".join(char for char in name if char.isprintable())
    return "" if name in {".", ".."} else name


def decode_base64_file(data: bytes) -> bytes:
    """A part sent with Content-Transfer-Encoding: base64, which Django's parser decoded."""
    stripped = b"".join(data.split())
    try:
        if len(stripped) % 4:
            raise ValueError("truncated")
        return base64.b64decode(stripped)
    except ValueError:  # binascii.Error too
        raise malformed("a base64 part does not decode") from None
