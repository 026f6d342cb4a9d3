"""Publishing an approved image: the stripped public copy of the original and its thumbnails,
written to public storage with their real content type and cache headers."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Collection
from functools import cache
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction
from PIL import Image as PILImage

from infra.storage import read_bytes
from publishing import storage_keys, thumbnails
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


KEY = re.compile(r"(?P<md5>[0-9a-f]{32})_(?P<size>[0-9a-z]+x[0-9a-z]+)(?P<webp>\.webp)?", re.ASCII)


def parse_thumbnail_key(key: str) -> tuple[str, thumbnails.Size, str]:
    """`<md5>_<W>x<H>[.webp]` → (md5, size, format); ValueError if malformed or not allowed."""
    match = KEY.fullmatch(key)
    if match is None:
        raise ValueError("expected a key like <md5>_400x400 or <md5>_400xauto.webp")
    (size,) = thumbnails.parse_sizes(match["size"])
    if size not in configured_sizes(settings.ON_DEMAND_SIZES):
        raise ValueError(f"size {size.suffix} is not offered")
    return match["md5"], size, "WEBP" if match["webp"] else "JPEG"


def generate_on_demand(image: Image, size: thumbnails.Size, fmt: str) -> tuple[str, bytes | None]:
    """Make one missing thumbnail of a published image; returns its key, and its bytes when it
    was rendered now (None when it was there already). Safe to run twice.

    The renditions of the row say what exists: a key not among them is rendered without asking
    the storage first (on S3 that question is a round trip); one among them is checked, so an
    object deleted behind the service's back is made again."""
    key = thumbnails.thumbnail_key(image.md5, size, fmt)
    if key in image.renditions and public_storage().exists(key):
        return key, None
    options: dict[str, Any] = render_options()
    rendition = None
    source = derivation_source(image, size, fmt)
    if source is not None:
        try:
            data, scaled_from = source
            rendition = thumbnails.render_one(data, size, fmt, scaled_from=scaled_from, **options)
        except Exception:  # a damaged source (rewritten meanwhile?): the original will do
            log.warning("cannot derive %s from a thumbnail; using the original", key, exc_info=True)
    if rendition is None:
        rendition = thumbnails.render_one(read_original(image), size, fmt, **options)
    save_public(key, rendition)
    if not add_renditions(image, [key]):
        release_public_objects(image.md5)  # unless another image of these bytes shows them
        raise Image.DoesNotExist("taken down while its thumbnail was made")
    return key, rendition.data


# A thumbnail made from a published one at least this many times larger (per side) is 0.1-0.2 dB
# PSNR from one made from the original (measured against a full-size Lanczos reference: 400 px
# of a 12 MP photo from its 800 px JPEG, 34.45 against 34.68 dB; the tests' 200 px of a 2 MP
# photo, 0.1 dB) at a twentieth of the cost: it decodes ~0.5 MP, not 12.
DERIVE_MIN_RATIO = 2


def derivation_source(
    image: Image, size: thumbnails.Size, fmt: str
) -> tuple[bytes, tuple[int, int]] | None:
    """The smallest published JPEG thumbnail of `image` with at least DERIVE_MIN_RATIO times
    the pixels per side that `size` needs, and the upright size of the original; None when
    there is none, or when deriving would change the result: a watermark (published
    thumbnails over 100 px carry it already) or a WebP wanted of an image that may have alpha
    (JPEG thumbnails are flattened). Only thumbnails of the current THUMBNAIL_SIZES qualify
    (never an on-demand size, nor one an older configuration made). A source that cannot be
    read (any storage error) is skipped, not an error."""
    if settings.WATERMARK_PATH or (fmt != "JPEG" and image.format != "JPEG"):
        return None
    current = set(thumbnail_keys(image.md5))
    # The row keeps the stored (not the upright) size: try both and let the source decide.
    uprights = {(image.width, image.height), (image.height, image.width)}
    candidates = []
    for key in image.renditions:
        match = KEY.fullmatch(key)
        if match is None or match["webp"] or key not in current:
            continue
        (box,) = thumbnails.parse_sizes(match["size"])
        fits = {full: box.fit(*full) for full in uprights}
        if all(_covers(fits[full], size.fit(*full)) for full in uprights):
            candidates.append((min(w * h for w, h in fits.values()), key, fits))
    for _, key, fits in sorted(candidates):
        try:
            data = read_bytes(public_storage(), key)
            with PILImage.open(io.BytesIO(data)) as source:
                actual = source.size
        except Exception:  # storage (botocore's errors are not OSErrors) or decoding
            log.warning("thumbnail %s of image %s is unreadable; trying another", key, image.pk)
            continue
        for full, fitted in fits.items():
            if fitted == actual:
                return data, full
    return None


def _covers(source: tuple[int, int], target: tuple[int, int]) -> bool:
    return all(s >= DERIVE_MIN_RATIO * t for s, t in zip(source, target, strict=True))


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
