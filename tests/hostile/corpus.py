"""The hostile-input corpus: every case is one upload request and the answer it must get.

Built at test time from tests/hostile/files.py and tokens.py (nothing downloaded). Refused
cases name the status and the stable error code; accepted ones (202) name what must hold of the
published copy once the pipeline has run (`after`, see test_published_copies.py).

`python -m tests.hostile DIR` writes every case's body to DIR with a manifest, for a fuzzer or
for eyes; the tests never read those files.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.hostile import files, tokens
from tests.photos import animated, heic, photo


@dataclass(frozen=True)
class Upload:
    body: bytes
    content_type: str = "application/json"
    authorization: str | None = "valid"  # "valid": a fresh genuine token; None: no header
    multipart: dict[str, Any] | None = None  # instead of body: fields and (name, bytes, type)


@dataclass(frozen=True)
class Case:
    name: str
    topic: str
    status: int
    code: str | None  # None when accepted
    build: Callable[[], Upload]
    settings: dict[str, Any] = field(default_factory=dict)
    after: str | None = None  # accepted cases: what to check on the published copy

    @property
    def accepted(self) -> bool:
        return self.status in (200, 202)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def json_body(image: Any, **fields: Any) -> bytes:
    return json.dumps({"data": {"image": image, **fields}}).encode()


def as_data_url(data: bytes, content_type: str = "image/jpeg") -> Upload:
    return Upload(json_body(f"data:{content_type};base64,{b64(data)}"))


def with_token(token: Callable[[], str]) -> Callable[[], Upload]:
    return lambda: Upload(json_body(b64(photo(64, 48))), authorization=f"Bearer {token()}")


def raw(body: bytes, content_type: str = "application/json") -> Callable[[], Upload]:
    return lambda: Upload(body, content_type)


def image(make: Callable[[], bytes], content_type: str = "image/jpeg") -> Callable[[], Upload]:
    return lambda: as_data_url(make(), content_type)


def bare(make: Callable[[], bytes]) -> Callable[[], Upload]:
    """Base64 without a data URL: no declared type."""
    return lambda: Upload(json_body(b64(make())))


def field_value(value: Any, **fields: Any) -> Callable[[], Upload]:
    return lambda: Upload(json_body(value, **fields))


def jpeg() -> bytes:
    return photo(64, 48)


def cut(make: Callable[[], bytes], end: int) -> Callable[[], bytes]:
    return lambda: make()[:end]


# Tables: one case a line.
# fmt: off
JWT = [
    Case("no Authorization header", "jwt", 401, "not_authenticated", lambda: Upload(json_body(b64(jpeg())), authorization=None)),
    Case("Basic credentials instead of a bearer token", "jwt", 401, "not_authenticated", lambda: Upload(json_body(b64(jpeg())), authorization="Basic dXNlcjpwYXNz")),
    Case("alg none", "jwt", 403, "invalid_token", with_token(lambda: tokens.unsigned({"alg": "none", "typ": "JWT"}))),
    Case("alg None in another case", "jwt", 403, "invalid_token", with_token(lambda: tokens.unsigned({"alg": "NoNe"}))),
    Case("HS256 keyed with our RSA public key", "jwt", 403, "invalid_token", with_token(tokens.hmac_with_public_key)),
    Case("HS512 keyed with our RSA public key", "jwt", 403, "invalid_token", with_token(lambda: tokens.hmac_with_public_key("HS512"))),
    Case("RS256 signed by a foreign key", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(tokens.pem(tokens.foreign_rsa_key())))),
    Case("a foreign key offered in the jwk header", "jwt", 403, "invalid_token", with_token(tokens.with_embedded_jwk)),
    Case("a foreign key behind a jku URL", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(tokens.pem(tokens.foreign_rsa_key()), headers={"jku": "http://attacker.example/jwks.json"}))),
    Case("a kid that walks the file system", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(tokens.pem(tokens.foreign_rsa_key()), headers={"kid": "../../../../dev/null"}))),
    Case("PS256 with the genuine key", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(algorithm="PS256"))),
    Case("ES256 with a foreign EC key", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(tokens.pem(tokens.foreign_ec_key()), algorithm="ES256"))),
    Case("a genuine signature over another payload", "jwt", 403, "invalid_token", with_token(tokens.with_resigned_payload)),
    Case("aud of another service", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(aud="https://other.example"))),
    Case("aud as a list without us", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(aud=["https://a.example", "https://b.example"]))),
    Case("no aud", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(aud=None))),
    Case("iss of another issuer", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(iss="https://evil.example"))),
    Case("no iss", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(iss=None))),
    Case("expired a minute ago", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(exp=tokens.claims()["nbf"] - 59))),
    Case("no exp", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(exp=None))),
    Case("exp as text", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(exp="tomorrow"))),
    Case("exp of 10**18", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(exp=10**18))),
    Case("valid for a hundred years", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(exp=tokens.claims()["nbf"] + 100 * 365 * 86400))),
    Case("nbf a minute ahead", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(nbf=tokens.claims()["exp"] - 540))),
    Case("a 10 KB header", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(headers={"kid": "k" * 10_000}))),
    Case("user_id longer than a database column", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(user_id="u" * 65))),
    Case("user_id as an object", "jwt", 403, "invalid_token", with_token(lambda: tokens.sign(user_id={"$ne": None}))),
    Case("two segments only", "jwt", 403, "invalid_token", with_token(lambda: ".".join(tokens.sign().split(".")[:2]))),
    Case("bearer with an empty token", "jwt", 403, "invalid_token", lambda: Upload(json_body(b64(jpeg())), authorization="Bearer ")),
    Case("two tokens in one header", "jwt", 403, "invalid_token", lambda: Upload(json_body(b64(jpeg())), authorization=f"Bearer {tokens.sign()} {tokens.sign()}")),
]

JSON = [
    Case("a truncated JSON object", "json", 400, "malformed_json", raw(b'{"data": {"image": "')),
    Case("a body of whitespace", "json", 400, "empty_body", raw(b" \r\n\t ")),
    Case("a UTF-8 byte order mark", "json", 202, None, lambda: Upload(b"\xef\xbb\xbf" + json_body(b64(jpeg())))),
    Case("objects nested 100,000 deep", "json", 400, "malformed_json", raw(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)),
    Case("data.image nested 100,000 deep", "json", 400, "malformed_json", raw(b'{"data": {"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}")),
    Case("data.image nested 200 deep", "json", 400, "invalid_image", raw(b'{"data": {"image": ' + b"[" * 200 + b"]" * 200 + b"}}")),
    Case("a 100,000-digit number", "json", 400, "malformed_json", raw(b'{"data": {"image": "x", "name": ' + b"9" * 100_000 + b"}}")),
    Case("data is a list", "json", 400, "missing_fields", raw(b'{"data": ["image"]}')),
    Case("data is a string", "json", 400, "missing_fields", raw(b'{"data": "image"}')),
    Case("data is null", "json", 400, "missing_fields", raw(b'{"data": null}')),
    Case("image is null", "json", 400, "missing_fields", raw(b'{"data": {"image": null}}')),
    Case("image is true", "json", 400, "invalid_image", field_value(True)),
    Case("image is an object", "json", 400, "invalid_image", field_value({"data": b64(b"x")})),
    Case("name is a number", "json", 400, "invalid_fields", lambda: field_value(b64(jpeg()), name=42)()),
    Case("name of punctuation only", "json", 400, "invalid_fields", lambda: field_value(b64(jpeg()), name="<!-- ?? -->")()),
    Case("description of 1,000 characters", "json", 400, "invalid_fields", lambda: field_value(b64(jpeg()), description="a" * 1000)()),
    Case("featured without a time zone", "json", 400, "invalid_fields", lambda: field_value(b64(jpeg()), featured="2024-05-16T02:03:37")()),
    Case("featured is a number", "json", 400, "invalid_fields", lambda: field_value(b64(jpeg()), featured=1715824000)()),
    Case("featured with an offset beyond PostgreSQL's", "json", 202, None, lambda: field_value(b64(jpeg()), featured="2024-05-16T02:03:37+20:00")()),
    Case("featured in year 9999 west of UTC", "json", 400, "invalid_fields", lambda: field_value(b64(jpeg()), featured="9999-12-31T23:59:59-10:00")()),
    Case("a form-encoded body", "json", 415, "unsupported_media_type", raw(b"data[image]=abc", "application/x-www-form-urlencoded")),
    Case("a text/plain body", "json", 415, "unsupported_media_type", lambda: Upload(json_body(b64(jpeg())), "text/plain")),
    Case("a name with NUL and a lone surrogate", "json", 202, None, lambda: Upload(json.dumps({"data": {"image": b64(jpeg()), "name": "Sun\u0000set \ud800 bay"}}).encode())),
]

DATA_URL = [
    Case("base64 without a data URL prefix", "data_url", 202, None, bare(jpeg)),
    Case("a data URL without its data: scheme", "data_url", 400, "invalid_base64", lambda: Upload(json_body(f"image/jpeg;base64,{b64(jpeg())}"))),
    Case("a data URL without a type", "data_url", 202, None, image(jpeg, "")),
    Case("a data URL with parameters", "data_url", 202, None, lambda: Upload(json_body(f"data:image/jpeg;charset=binary;name=a%20b.jpg;base64,{b64(jpeg())}"))),
    Case("a data URL in upper case", "data_url", 202, None, lambda: Upload(json_body(f"DATA:IMAGE/JPEG;BASE64,{b64(jpeg())}"))),
    Case("a data URL declared application/octet-stream", "data_url", 202, None, image(jpeg, "application/octet-stream")),
    Case("a data URL with a CRLF in its header", "data_url", 400, "invalid_data_url", lambda: Upload(json_body(f"data:image/jpeg\r\nX-Evil: 1;base64,{b64(jpeg())}"))),
    Case("a data URL of text/html", "data_url", 415, "unsupported_image_format", image(jpeg, "text/html")),
    Case("a data URL of application/pdf", "data_url", 415, "unsupported_image_format", image(lambda: files.refused_format("PDF"), "application/pdf")),
    Case("a data URL of image/svg+xml", "data_url", 415, "unsupported_image_format", image(lambda: files.refused_format("SVG"), "image/svg+xml")),
    Case("a data URL of image/tiff", "data_url", 415, "unsupported_image_format", image(lambda: files.refused_format("TIFF"), "image/tiff")),
    Case("a data URL that is not base64", "data_url", 400, "invalid_data_url", lambda: Upload(json_body("data:image/jpeg,%FF%D8%FF%E0"))),
]

BASE64 = [
    Case("base64 with junk characters", "base64", 400, "invalid_base64", lambda: Upload(json_body(b64(jpeg())[:40] + "!*$" + b64(jpeg())[40:]))),
    Case("base64 wrapped at 76 columns", "base64", 400, "invalid_base64", lambda: Upload(json_body(base64.encodebytes(jpeg()).decode()))),
    Case("base64 in the URL-safe alphabet", "base64", 400, "invalid_base64", lambda: Upload(json_body(base64.urlsafe_b64encode(photo(320, 240)).decode()))),
    Case("base64 without its padding", "base64", 400, "invalid_base64", lambda: Upload(json_body(b64(jpeg()[:-1]).rstrip("=")))),
    Case("base64 with extra padding", "base64", 400, "invalid_base64", lambda: Upload(json_body(b64(jpeg()) + "===="))),
    Case("base64 of padding only", "base64", 400, "invalid_base64", field_value("====")),
    Case("an empty image string", "base64", 400, "missing_fields", field_value("")),
    Case("a data URL with an empty payload", "base64", 400, "empty_image", field_value("data:image/png;base64,")),
    Case("base64 with non-ASCII letters", "base64", 400, "invalid_base64", lambda: Upload(json_body("/9j/" + "Ä" * 40))),
]

LIMITS = {"MAX_IMAGE_BYTES": 60_000, "MAX_REQUEST_BYTES": 100_000, "DATA_UPLOAD_MAX_MEMORY_SIZE": 100_000}
OVERSIZED = [
    Case("a body over the limit, by its Content-Length", "size", 413, "payload_too_large", image(lambda: photo(640, 480, quality=97)), settings=LIMITS),
    Case("base64 longer than the image limit", "size", 413, "payload_too_large", bare(lambda: photo(400, 300, quality=97)), settings={**LIMITS, "MAX_REQUEST_BYTES": 1_000_000, "DATA_UPLOAD_MAX_MEMORY_SIZE": 1_000_000}),
    Case("a multipart file over the limit", "size", 413, "payload_too_large", lambda: Upload(b"", multipart={"image": ("a.jpg", photo(400, 300, quality=97), "image/jpeg")}), settings={**LIMITS, "MAX_REQUEST_BYTES": 1_000_000, "DATA_UPLOAD_MAX_MEMORY_SIZE": 1_000_000}),
]

MISMATCH = [
    Case("a GIF declared as PNG", "mismatch", 202, None, image(lambda: photo(64, 48, fmt="GIF"), "image/png")),
    Case("a WebP declared as JPEG", "mismatch", 202, None, image(lambda: photo(64, 48, fmt="WEBP"))),
    Case("a JPEG declared as HEIC", "mismatch", 202, None, image(jpeg, "image/heic")),
    Case("a multipart PNG part labelled GIF", "mismatch", 202, None, lambda: Upload(b"", multipart={"image": ("a.gif", photo(64, 48, fmt="PNG"), "image/gif")})),
    Case("a multipart part labelled text/html", "mismatch", 415, "unsupported_image_format", lambda: Upload(b"", multipart={"image": ("a.html", jpeg(), "text/html")})),
    Case("a multipart file named to walk the file system", "mismatch", 202, None, lambda: Upload(b"", multipart={"image": ("../../../etc/passwd", jpeg(), "image/jpeg")})),
]

REFUSED = ["HTML", "PDF", "ZIP", "random bytes", "SVG", "TIFF", "BMP", "ICO", "JPEG2000", "TGA", "PCX", "PHP", "ELF", "PostScript"]
FORMATS = [
    Case(f"a {name} file", "format", 415, "unsupported_image_format", bare(lambda name=name: files.refused_format(name)))
    for name in REFUSED
]

TRUNCATED = [
    Case("a JPEG cut to its first three bytes", "truncated", 422, "corrupt_image", bare(cut(jpeg, 3))),
    Case("a JPEG cut inside its headers", "truncated", 422, "corrupt_image", bare(cut(jpeg, 300))),
    Case("a JPEG cut inside its scan", "truncated", 422, "corrupt_image", bare(lambda: photo(320, 240)[:12_000])),
    Case("a JPEG without its end marker", "truncated", 422, "corrupt_image", bare(lambda: photo(320, 240)[:-2])),
    Case("a PNG signature alone", "truncated", 422, "corrupt_image", bare(cut(files.small_png, 8))),
    Case("a PNG cut after its header", "truncated", 422, "corrupt_image", bare(cut(files.small_png, 33))),
    Case("a PNG cut inside its pixel data", "truncated", 422, "corrupt_image", bare(lambda: files.small_png()[: len(files.small_png()) // 2])),
    Case("a GIF cut inside its pixel data", "truncated", 422, "corrupt_image", bare(lambda: photo(200, 150, fmt="GIF")[:500])),
    Case("a WebP cut in half", "truncated", 422, "corrupt_image", bare(lambda: photo(200, 150, fmt="WEBP")[:300])),
    Case("a HEIC cut in half", "truncated", 422, "corrupt_image", bare(lambda: heic(320, 240)[:2000])),
    Case("a PNG with a broken header checksum", "checksum", 422, "corrupt_image", bare(lambda: files.png_broken_crc(b"IHDR"))),
    Case("a PNG with a broken pixel data checksum", "checksum", 422, "corrupt_image", bare(lambda: files.png_broken_crc(b"IDAT"))),
]

BOMBS = [
    Case("a PNG header claiming 100000x100000", "bomb", 422, "image_too_large", bare(lambda: files.png_with_size(100_000, 100_000))),
    Case("a JPEG header claiming 65000x65000", "bomb", 422, "image_too_large", bare(lambda: files.jpeg_with_size(65_000, 65_000))),
    Case("a GIF header claiming 65535x65535", "bomb", 422, "image_too_large", bare(lambda: files.gif((65_535, 65_535), 1))),
    Case("a real 8000x8000 one-bit PNG", "bomb", 422, "image_too_large", bare(lambda: files.bilevel_png_bomb(8000))),
    Case("a real 8000x8000 GIF", "bomb", 422, "image_too_large", bare(lambda: files.gif((8000, 8000), 1, (8000, 8000)))),
    Case("a zTXt chunk inflating to 100 MB", "text_bomb", 422, "corrupt_image", bare(files.ztxt_bomb)),
    Case("an iTXt chunk inflating to 100 MB", "text_bomb", 422, "corrupt_image", bare(files.itxt_bomb)),
    Case("3 MB of tEXt chunks", "text_bomb", 422, "corrupt_image", bare(files.text_flood)),
    Case("a GIF of 10,000 frames", "frame_bomb", 422, "too_many_frames", bare(lambda: files.gif((64, 64), 10_000))),
    Case("a GIF of 60 frames on a 2000x2000 canvas", "frame_bomb", 422, "image_too_large", bare(lambda: files.gif((2000, 2000), 60))),
    Case("an APNG claiming 2^31 frames", "frame_bomb", 422, "too_many_frames", bare(lambda: files.apng_claiming_frames(2**31 - 1))),
    Case("an APNG of 150 frames", "frame_bomb", 422, "too_many_frames", bare(lambda: files.apng(150))),
    Case("an animated WebP of 150 frames", "frame_bomb", 422, "too_many_frames", bare(lambda: animated("WEBP", frames=150, size=(16, 16)))),
]

DEGENERATE = [
    Case("a 1x1 PNG", "tiny", 422, "image_too_small", bare(lambda: files.encode(files.Image.new("RGB", (1, 1)), "PNG"))),
    Case("a 1x2000 PNG", "tiny", 422, "image_too_small", bare(lambda: files.encode(files.Image.new("RGB", (1, 2000)), "PNG"))),
    Case("a 2000x1 JPEG", "tiny", 422, "image_too_small", bare(lambda: files.encode(files.Image.new("RGB", (2000, 1)), "JPEG"))),
    Case("a 15x16 PNG", "tiny", 422, "image_too_small", bare(lambda: files.encode(files.Image.new("RGB", (15, 16)), "PNG"))),
    Case("a PNG header of width 0", "tiny", 422, "corrupt_image", bare(lambda: files.png_with_size(0, 64))),
    Case("a JPEG header of height 0", "tiny", 422, "corrupt_image", bare(lambda: files.jpeg_with_size(64, 0))),
    Case("a 16x16 PNG, the smallest accepted", "tiny", 202, None, bare(lambda: files.encode(files.Image.new("RGB", (16, 16), "teal"), "PNG"))),
    Case("a GIF with a 0x0 screen around a 32x32 frame", "tiny", 202, None, bare(lambda: files.gif((0, 0), 1, (32, 32)))),
]

ACCEPTED = [
    Case("a JPEG with an HTML page after its end", "polyglot", 202, None, bare(lambda: photo(320, 240) + files.HTML_TRAILER), after="no_html"),
    Case("a GIF with a ZIP archive after it", "polyglot", 202, None, bare(files.gif_with_trailing_zip), after="no_zip"),
    Case("a PNG with PHP after its end", "polyglot", 202, None, bare(lambda: photo(64, 64, fmt="PNG") + files.PHP_TRAILER), after="no_php"),
    Case("a JPEG with HTML in its comment", "polyglot", 202, None, bare(lambda: photo(320, 240, comment=files.HTML_TRAILER)), after="no_html"),
    Case("a photo with GPS coordinates", "metadata", 202, None, bare(lambda: photo(640, 480, gps=True)), after="no_gps"),
    Case("a CMYK JPEG", "odd", 202, None, bare(lambda: photo(640, 480, mode="CMYK")), after="rgb"),
    Case("a 16-bit PNG", "odd", 202, None, bare(lambda: photo(320, 240, fmt="PNG", mode="I;16")), after="rgb"),
    Case("a progressive JPEG", "odd", 202, None, bare(lambda: photo(640, 480, progressive=True)), after="rgb"),
    Case("an MPO with two pictures", "odd", 202, None, bare(files.mpo), after="one_picture"),
    Case("a JPEG turned by its EXIF orientation", "odd", 202, None, bare(lambda: photo(640, 480, orientation=6)), after="upright"),
    Case("a JPEG in Adobe RGB", "odd", 202, None, bare(lambda: photo(640, 480, icc="adobe_rgb")), after="rgb"),
    Case("a PNG with a palette and transparency", "odd", 202, None, bare(lambda: photo(320, 240, fmt="PNG", mode="P")), after="rgb"),
    Case("a HEIC photo", "odd", 202, None, bare(lambda: heic(320, 240)), after="rgb"),
    Case("a JPEG whose scan data is garbage", "odd", 202, None, bare(files.jpeg_scan_corrupted), after="final"),
]
# fmt: on

CORPUS: list[Case] = [
    *JWT,
    *JSON,
    *DATA_URL,
    *BASE64,
    *OVERSIZED,
    *MISMATCH,
    *FORMATS,
    *TRUNCATED,
    *BOMBS,
    *DEGENERATE,
    *ACCEPTED,
]
BY_NAME = {case.name: case for case in CORPUS}
assert len(BY_NAME) == len(CORPUS), "case names must be unique"


def write(directory: str) -> int:
    """Write every case's request body to `directory`, with manifest.json; returns the count."""
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for number, case in enumerate(CORPUS):
        upload = case.build()
        name = f"{number:03d}.body"
        (out / name).write_bytes(upload.body if upload.multipart is None else b"")
        manifest.append(
            {
                "file": name,
                "case": case.name,
                "topic": case.topic,
                "status": case.status,
                "code": case.code,
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return len(manifest)
