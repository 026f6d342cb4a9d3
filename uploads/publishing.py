"""Publishing an approved image: the stripped public copy of the original and its thumbnails,
written to public storage with their real content type and cache headers."""

from __future__ import annotations

import logging
from functools import cache

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from PIL import Image as PILImage

from uploads import thumbnails
from uploads.models import Image

log = logging.getLogger(__name__)


def public_storage() -> Storage:
    return storages["public"]


@cache
def configured_sizes(text: str) -> tuple[thumbnails.Size, ...]:
    return tuple(thumbnails.parse_sizes(text))


def _background() -> tuple[int, int, int]:
    value = settings.THUMBNAIL_BACKGROUND.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


@cache
def _watermark(path: str) -> PILImage.Image | None:
    if not path:
        return None
    with PILImage.open(path) as mark:
        return mark.convert("RGBA")


def render_options() -> dict[str, object]:
    return {
        "formats": tuple(settings.THUMBNAIL_FORMATS),
        "jpeg_quality": settings.JPEG_QUALITY,
        "webp_quality": settings.WEBP_QUALITY,
        "background": _background(),
        "watermark": _watermark(settings.WATERMARK_PATH),
    }


def save_public(key: str, rendition: thumbnails.Rendition) -> None:
    content = ContentFile(rendition.data)
    content.content_type = rendition.content_type  # type: ignore[attr-defined]
    storage = public_storage()
    if not getattr(storage, "file_overwrite", True) and storage.exists(key):
        storage.delete(key)
    storage.save(key, content)


def read_original(image: Image) -> bytes:
    with storages["default"].open(image.md5, "rb") as original:
        return original.read()


def publish_image(image: Image) -> list[str]:
    """Render and write every public object of `image`; returns their keys. Safe to rerun."""
    data = read_original(image)
    sizes = configured_sizes(settings.THUMBNAIL_SIZES)
    renditions = thumbnails.render_thumbnails(
        data,
        sizes,
        include_original=True,
        **render_options(),  # type: ignore[arg-type]
    )
    keys = []
    for rendition in renditions:
        key = key_for(image.md5, rendition)
        save_public(key, rendition)
        keys.append(key)
    return keys


def key_for(md5: str, rendition: thumbnails.Rendition) -> str:
    if rendition.name == "original":
        return md5
    (size,) = thumbnails.parse_sizes(rendition.name)
    return thumbnails.thumbnail_key(md5, size, rendition.format)


def unpublish_image(image: Image) -> list[str]:
    """Delete every public object of `image` (original copy and thumbnails). Safe to rerun."""
    storage = public_storage()
    removed = []
    for key in {image.md5, *image.renditions}:
        if storage.exists(key):
            storage.delete(key)
            removed.append(key)
    return removed
