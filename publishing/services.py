"""Publishing an approved image: the stripped public copy of the original and its thumbnails,
written to public storage with their real content type and cache headers."""

from __future__ import annotations

import logging
from collections.abc import Collection
from functools import cache
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction
from PIL import Image as PILImage

from infra.storage import read_bytes
from publishing import placeholders, storage_keys, thumbnails
from uploads.models import Actor, EventKind, Image, State, record_event

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
        "jpeg_quality": settings.JPEG_QUALITY,
        "webp_quality": settings.WEBP_QUALITY,
        "background": _background(),
        "watermark": _watermark(settings.WATERMARK_PATH),
    }


def save_public(key: str, rendition: thumbnails.Rendition) -> None:
    content = ContentFile(rendition.data)
    content.content_type = rendition.content_type  # type: ignore[attr-defined]
    saved = public_storage().save(key, content)
    if saved != key:  # a storage configured to rename instead of overwrite
        raise RuntimeError(f"public storage saved {key} as {saved}; allow overwriting")


def read_public(key: str) -> bytes:
    return read_bytes(public_storage(), key)


def placeholder_for(keys: list[str]) -> dict[str, str]:
    """The placeholder (publishing.placeholders) of an image from its smallest thumbnail among
    `keys`; {} when there is none or it cannot be read."""
    return placeholders.for_published(keys, read_public, _background())


def read_original(image: Image) -> bytes:
    return read_bytes(storages["default"], image.md5)


def publish_image(image: Image, *, include_original: bool = True) -> list[str]:
    """Render and write every public object of `image`; returns their keys. Safe to rerun."""
    data = read_original(image)
    sizes = configured_sizes(settings.THUMBNAIL_SIZES)
    renditions = thumbnails.render_thumbnails(
        data,
        sizes,
        formats=settings.THUMBNAIL_FORMATS,
        include_original=include_original,
        original_max_side=settings.PUBLIC_ORIGINAL_MAX_SIDE,
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


def add_renditions(image: Image, keys: list[str], *, event: dict[str, Any] | None = None) -> bool:
    """Record `keys` in the renditions of `image` (and `event`, an ImageEvent's fields) if it
    is still published. False when a takedown came first: unpublishing may have read the
    renditions already, so the caller must delete what it wrote."""
    with transaction.atomic():
        # Usually the row is as `image` was read: one conditional UPDATE, no locking read.
        renditions = _with_keys(image.renditions, keys)
        as_read = Image.objects.filter(
            pk=image.pk, state=State.PUBLISHED, renditions=image.renditions
        )
        if not as_read.update(renditions=renditions):
            locked = Image.objects.select_for_update().get(pk=image.pk)
            if locked.state != State.PUBLISHED:
                return False
            renditions = _with_keys(locked.renditions, keys)
            Image.objects.filter(pk=image.pk).update(renditions=renditions)
        if event is not None:
            record_event(image.pk, EventKind.STORAGE, **event)
    image.renditions = renditions
    return True


def _with_keys(renditions: list[str], keys: list[str]) -> list[str]:
    return [*renditions, *(key for key in keys if key not in renditions)]


def thumbnail_keys(md5: str) -> list[str]:
    """The thumbnail keys the current THUMBNAIL_SIZES and THUMBNAIL_FORMATS give `md5`."""
    sizes = configured_sizes(settings.THUMBNAIL_SIZES)
    formats = settings.THUMBNAIL_FORMATS
    return [thumbnails.thumbnail_key(md5, size, fmt) for size in sizes for fmt in formats]


def regenerate_thumbnails(image: Image, *, include_original: bool = True) -> list[str]:
    """Re-render the public objects of a published image for the current sizes and formats
    (the original's copy too unless `include_original` is False), add them to its renditions
    with a STORAGE event; returns the keys written, [] if it was taken down meanwhile.
    Safe to interrupt and rerun: a rerun rewrites the same keys."""
    keys = publish_image(image, include_original=include_original)
    event = {"actor": Actor.REGENERATE_THUMBNAILS, "reason": "re-rendered"}
    if add_renditions(image, keys, event={**event, "details": {"written": keys}}):
        placeholder = placeholder_for(keys)  # also fills it in for images published before it
        if placeholder:
            Image.objects.filter(pk=image.pk).update(**placeholder)
        return keys
    storage_keys.delete_objects("public", keys)
    return []


def forget_thumbnails(md5s: Collection[str], *, actor: str) -> int:
    """Drop the thumbnail keys (with `_`) from the renditions of the images with these md5s,
    keeping the original's `<md5>`, with a STORAGE event each; returns how many changed."""
    changed = 0
    with transaction.atomic():
        for image in Image.objects.select_for_update().filter(md5__in=md5s).order_by("pk"):
            removed = [key for key in image.renditions if storage_keys.is_thumbnail(key)]
            if not removed:
                continue
            image.renditions = [key for key in image.renditions if key not in removed]
            image.save(update_fields=["renditions"])
            record_event(
                image.pk,
                EventKind.STORAGE,
                actor=actor,
                reason="thumbnails purged",
                details={"removed": removed},
            )
            changed += 1
    return changed


def content_type_of(key: str, head: bytes) -> str:
    if key.endswith(".webp"):
        return "image/webp"
    if key.endswith(".avif"):
        return "image/avif"
    return "image/png" if head.startswith(b"\x89PNG") else "image/jpeg"


def release_public_objects(md5: str) -> tuple[list[str], str | None]:
    """Delete every public object of `md5` (the original's copy and every thumbnail, recorded
    or not) unless an image of these bytes is published or being published; returns the keys
    deleted, and the id of the image that keeps them instead. Safe to rerun.

    Public keys derive from the md5 alone, so images of the same bytes (other users' uploads)
    share them; the last one to leave the way to publication (taken down, failed, or taken
    down while its thumbnails were written) removes them. Every row of the md5 stays locked
    meanwhile (one listing and one batch delete), so none starts publishing half-way through."""
    with transaction.atomic():
        same_bytes = Image.objects.select_for_update().filter(md5=md5).order_by("pk")
        for pk, state in same_bytes.values_list("pk", "state"):
            if state in (State.PUBLISHED, State.PUBLISHING):
                return [], str(pk)
        keys = [obj.key for obj in storage_keys.list_objects("public", prefix=md5)]
        storage_keys.delete_objects("public", keys)
    return keys, None
