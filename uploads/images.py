"""What an uploaded file really is: sniffed with Pillow, restricted to the allowed formats, and
checked against every limit before anything is stored. Cheap checks first."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pillow_heif
from django.conf import settings
from PIL import Image, ImageFile, PngImagePlugin
from rest_framework import status

from infra.errors import ApiError

ORIENTATION_TAG = 0x0112  # EXIF Orientation

pillow_heif.register_heif_opener()
# Register every Pillow plugin now: `Image.OPEN` starts with only the ones already imported
# (PNG here), so a fresh process would otherwise refuse its first JPEG, GIF or WebP as 415.
Image.init()
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow refuses at twice this; we refuse at once, with our own message, before decoding.
Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS
# Larger PNGs are checked by their CRCs only, to bound a request's memory.
FULL_DECODE_PIXELS = 16_000_000
# WebP and HEIF decoders hold several full-size buffers (measured peaks: ~15 and ~7 bytes per
# pixel, so an 87 KB 7000x7000 WebP took 750 MB): larger ones are only parsed here, and decoded
# by the worker, which fails them cleanly if they are corrupt.
LOAD_PIXELS = {"WEBP": 4_000_000, "HEIF": 8_000_000}
# Text chunks are metadata we never keep: a zTXt "bomb" must not inflate in memory.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024

# Pillow's format names; MPO is a JPEG with extra pictures (many cameras write it), which
# Pillow's JPEG opener returns on its own.
FORMAT_FAMILY = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "WEBP",
    "HEIF": "HEIF",
}
CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}
DECLARED_TYPES = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "image/heic-sequence": "HEIF",
    "image/heif-sequence": "HEIF",
}
# The signatures of the allowed formats: a file that starts like one but does not open is damaged
# (422), not of another format (415).
SIGNATURES = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (8, b"WEBP", "WEBP"),
    (4, b"ftypheic", "HEIF"),
    (4, b"ftypheix", "HEIF"),
    (4, b"ftypmif1", "HEIF"),
)
# Refused outright, named so the message says what was sent.
KNOWN_OTHERS = (
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
    (b"<!doctype html", "HTML"),
    (b"<html", "HTML"),
)


@dataclass(frozen=True)
class ImageInfo:
    format: str  # JPEG, PNG, GIF, WEBP or HEIF
    content_type: str
    width: int  # upright: as shown, after the EXIF orientation
    height: int
    frame_count: int


def unsupported(what: str) -> ApiError:
    allowed = ", ".join(settings.ALLOWED_IMAGE_FORMATS)
    return ApiError(
        "unsupported_image_format",
        f"{what} is not accepted. Upload one of: {allowed}.",
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    )


def unprocessable(code: str, message: str) -> ApiError:
    return ApiError(code, message, status.HTTP_422_UNPROCESSABLE_ENTITY)


def declared_format(content_type: str | None) -> str | None:
    """The format a client declared (data URL or multipart part type); None if it declared none."""
    if not content_type or content_type in {"application/octet-stream", "binary/octet-stream"}:
        return None
    family = DECLARED_TYPES.get(content_type.lower())
    if family is None:
        raise unsupported(f"Content type {content_type!r}")
    return family


def _name_of(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    for magic, name in KNOWN_OTHERS:
        if head.startswith(magic.lower()):
            return f"A {name} file"
    return "This file"


def _signature_family(data: bytes) -> str | None:
    for offset, magic, family in SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return family
    return None


def inspect_image(data: bytes, *, declared: str | None) -> ImageInfo:
    """Identify and validate `data`; raise ApiError with a stable code if it is refused."""
    if not data:
        raise ApiError("empty_image", "The image is empty.")
    allowed = [
        name
        for name, family in FORMAT_FAMILY.items()
        if family in settings.ALLOWED_IMAGE_FORMATS and name in Image.OPEN
    ]
    try:
        image = Image.open(io.BytesIO(data), formats=allowed)
    except Image.DecompressionBombError:
        raise unprocessable("image_too_large", "The image has too many pixels.") from None
    except Exception:  # Pillow raises many types for files it cannot identify
        if _signature_family(data) in settings.ALLOWED_IMAGE_FORMATS:
            raise unprocessable("corrupt_image", "The image is damaged or incomplete.") from None
        raise unsupported(_name_of(data)) from None
    with image:
        # A declared type that differs is not refused: browsers derive a data URL's type from
        # the file's extension. The bytes decide; the upload event records what was declared.
        family = FORMAT_FAMILY[image.format or ""]
        info = _check_limits(image, family)
        _check_decodes(image, data, family)
    return info


def _check_limits(image: Image.Image, family: str) -> ImageInfo:
    width, height = image.size
    if min(width, height) < settings.MIN_IMAGE_SIDE:
        raise unprocessable(
            "image_too_small", f"Both sides must be at least {settings.MIN_IMAGE_SIDE} pixels."
        )
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise unprocessable(
            "image_too_large", f"The image has more than {settings.MAX_IMAGE_PIXELS} pixels."
        )
    try:
        frames = getattr(image, "n_frames", 1) if family in {"GIF", "WEBP", "HEIF", "PNG"} else 1
    except Exception:
        raise unprocessable("corrupt_image", "The image is damaged or incomplete.") from None
    if frames > settings.MAX_FRAMES:
        raise unprocessable(
            "too_many_frames", f"Images may have at most {settings.MAX_FRAMES} frames."
        )
    if width * height * frames > settings.MAX_TOTAL_PIXELS:
        raise unprocessable("image_too_large", "The animation has too many pixels in total.")
    if _orientation(image) >= 5:  # EXIF says it is shown turned a quarter: report it upright
        width, height = height, width
    return ImageInfo(family, CONTENT_TYPES[family], width, height, frames)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) as publishing applies it; 1 when absent or unreadable."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1  # an eXIf chunk after the pixels: Pillow would decode them to find it
    try:
        orientation = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # damaged EXIF: publishing ignores it too
        return 1
    return orientation if orientation in range(1, 9) else 1


def _check_decodes(image: Image.Image, data: bytes, family: str) -> None:
    """Catch truncated and corrupt files (verify() alone misses truncation)."""
    try:
        image.seek(0)
        if family == "JPEG":
            _check_jpeg_complete(image, data)
        elif family == "PNG":
            image.verify()  # chunk CRCs and structure, without inflating every row
            if image.width * image.height <= FULL_DECODE_PIXELS:
                with Image.open(io.BytesIO(data), formats=["PNG"]) as again:
                    again.load()
        elif image.width * image.height <= LOAD_PIXELS.get(family, FULL_DECODE_PIXELS):
            image.load()
    except Image.DecompressionBombError:
        raise unprocessable("image_too_large", "The image has too many pixels.") from None
    except ApiError:
        raise
    except Exception:
        raise unprocessable("corrupt_image", "The image is damaged or incomplete.") from None


def _check_jpeg_complete(image: Image.Image, data: bytes) -> None:
    """A JPEG is complete when its end-of-image marker follows the scan data.

    Entropy-coded data cannot contain FF D9 (an FF there is stuffed with 00), so the first
    FF D9 after the first scan is the end of the image; a truncated upload has none. This is
    what a decode finds out about truncation, for almost nothing (bench/upload.py: even a
    1/8-scale draft decode costs more than all the other work of an upload). Searched from
    the end, where the marker is: 1 us instead of 3.8 ms for a 12 MP photo, whose scan data
    is full of FF bytes. The worker decodes the image fully anyway, and fails it cleanly if
    the scan data is corrupt.
    """
    tile = getattr(image, "tile", None)
    scan_start = tile[0][2] if tile else 0
    if data.rfind(b"\xff\xd9", scan_start) == -1:
        raise unprocessable("corrupt_image", "The image is damaged or incomplete.")
