"""The upload workflow (validate → store the private original → create the row → enqueue) and
the decisions that cross images: a takedown of content, shown by every image of its bytes."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import DatabaseError, IntegrityError, transaction

from infra.errors import ApiError, unavailable
from infra.logging import current_request_id
from infra.storage import read_bytes
from uploads import pipeline
from uploads.authentication import Uploader
from uploads.images import ImageInfo, inspect_image
from uploads.models import Actor, EventKind, Image, State, record_event
from uploads.serializers import UploadPayload

log = logging.getLogger(__name__)


def receive_upload(*, uploader: Uploader, payload: UploadPayload) -> tuple[Image, bool]:
    """Store an upload and start its processing. Returns (image, created); the same bytes for
    the same imageable return the existing image. Leaves nothing behind when it raises."""
    info = inspect_image(payload.data, declared=payload.declared)
    sha256 = hashlib.sha256(payload.data).hexdigest()
    md5 = hashlib.md5(payload.data, usedforsecurity=False).hexdigest()
    # No look-up first: almost every upload is new, and the unique constraint on (sha256,
    # imageable) answers for the rest (a retried upload, or the same bytes sent twice at once).
    # The look-up cost 0.8 ms of the 17 ms of CPU of a 5 MB upload (bench/upload.py's app,
    # timed per phase); a repeat now costs a check of the stored original instead (its bytes
    # are read back and compared: store_original never overwrites).
    wrote = store_original(md5, sha256, payload.data, info.content_type)
    try:
        with transaction.atomic():
            image = Image.objects.create(
                user_id=uploader.id,
                imageable_type=uploader.imageable_type,
                imageable_id=uploader.imageable_id,
                name=payload.name,
                description=payload.description,
                featured=payload.featured,
                focal_x=payload.focal[0] if payload.focal else None,
                focal_y=payload.focal[1] if payload.focal else None,
                md5=md5,
                sha256=sha256,
                format=info.format,
                content_type=info.content_type,
                width=info.width,
                height=info.height,
                byte_size=len(payload.data),
                frame_count=info.frame_count,
                request_id=current_request_id(),
            )
            record_event(
                image.pk,
                EventKind.UPLOADED,
                to_state=image.state,
                actor=Actor.uploader(uploader.id),
                details=upload_details(payload, info),
            )
            pipeline.enqueue_for_state(image)
    except IntegrityError:
        # These bytes are an image of this imageable already (uploaded before, or just now by
        # a concurrent request): that image is the answer.
        existing = _existing(uploader, sha256)
        if existing is None:
            if wrote:
                _forget_original(md5)
            raise
        if existing.state == State.FAILED:
            return _start_again(existing, uploader)
        return existing, False
    except DatabaseError as exc:
        if wrote:
            _forget_original(md5)
        log.error("database unavailable during upload: %s", exc)
        raise unavailable("database_unavailable", "The service is briefly unavailable.") from None
    except BaseException:
        if wrote:  # whatever failed, a refused upload leaves nothing behind
            _forget_original(md5)
        raise
    return image, True


def upload_details(payload: UploadPayload, info: ImageInfo) -> dict[str, object]:
    """The upload event's details; a declared type the bytes contradict is recorded there."""
    details: dict[str, object] = {"format": info.format, "bytes": len(payload.data)}
    if payload.declared is not None and payload.declared != info.format:
        details["declared_format"] = payload.declared
    return details


def _start_again(image: Image, uploader: Uploader) -> tuple[Image, bool]:
    """The same bytes again for an imageable whose image failed (its original is stored again
    by then, if it went missing): the stage that failed starts over. (image, True) when it
    did, like a new upload; (image, False) when another request restarted it first."""
    try:
        restarted = image.retry(actor=Actor.uploader(uploader.id), reason="uploaded again")
    except DatabaseError:
        raise unavailable("database_unavailable", "The service is briefly unavailable.") from None
    image.refresh_from_db()
    return image, restarted


def _existing(uploader: Uploader, sha256: str) -> Image | None:
    """The image of these bytes for this imageable (one_image_per_imageable: at most one)."""
    try:
        return Image.objects.filter(
            sha256=sha256,
            imageable_type=uploader.imageable_type,
            imageable_id=uploader.imageable_id,
        ).first()
    except DatabaseError:
        raise unavailable("database_unavailable", "The service is briefly unavailable.") from None


def private_storage() -> Storage:
    return storages["default"]


def store_original(md5: str, sha256: str, data: bytes, content_type: str) -> bool:
    """Write the private original under its md5. Returns whether this call wrote it.

    Never overwrites: an object already under this md5 must hold the same bytes (an md5
    collision must not swap a moderated image for another)."""
    storage = private_storage()
    try:
        if storage.exists(md5):
            if hashlib.sha256(read_bytes(storage, md5)).hexdigest() != sha256:
                raise ApiError("checksum_conflict", "This image cannot be accepted.", 422)
            return False
        content = ContentFile(data)
        content.content_type = content_type  # type: ignore[attr-defined]
        # One chunk: FileSystemStorage writes a file chunk by chunk, 64 KiB by default (80
        # copies and writes for a 5 MB photo: store_original took 2.1 ms of CPU, 1.6 with one
        # write; bench/upload.py per phase). S3Storage (infra/storage.py) reads it whole.
        content.DEFAULT_CHUNK_SIZE = max(len(data), 1)
        storage.save(md5, content)
    except ApiError:
        raise
    except Exception as exc:  # botocore, OS and network errors all mean the same here
        log.error("storage unavailable during upload: %s", exc)
        raise unavailable("storage_unavailable", "Image storage is briefly unavailable.") from None
    return True


def _forget_original(md5: str) -> None:
    """Remove an original this request wrote but could not record, unless a row now uses it."""
    try:
        in_use = Image.objects.filter(md5=md5).exists()
    except DatabaseError:
        in_use = False  # we wrote it a moment ago; the database is down, so nothing else did
    try:
        if not in_use:
            private_storage().delete(md5)
    except Exception:
        log.warning("could not remove orphaned original %s; check_integrity reports it", md5)


def take_down_content(*, image: Image, by: Any, reason: str, actor: str = "") -> list[Image]:
    """Take `image` down and, with it, every other image of the same bytes that is published
    or on its way (approved, publishing): their public objects are the same keys. Each gets
    its own transition, event and notice; a copy waiting for review is rejected with the
    takedown's reason. Every copy's transition is in one transaction. Returns the images that
    changed, `image` first ([] when `image` could not be taken down)."""
    actor = actor or Actor.of(by, otherwise="takedown")
    changed: list[Image] = []
    with transaction.atomic():
        if not image.take_down(by=by, reason=reason, actor=actor):
            return []
        changed.append(image)
        why = f"same bytes as taken-down image {image.pk}: {reason}"
        details = {"same_bytes_as": str(image.pk)}
        copies = Image.objects.same_bytes(image).filter(
            state__in=[State.PUBLISHED, State.APPROVED, State.PUBLISHING, State.IN_REVIEW]
        )
        for copy in copies.order_by("created_at"):
            if copy.state == State.IN_REVIEW:
                done = copy.reject(by=by, reason=why, actor=actor, details=details)
            else:
                done = copy.take_down(by=by, reason=why, actor=actor, details=details)
            if done:
                changed.append(copy)
    return changed


def other_pins_showing(image: Image) -> int:
    """How many other images (other pins) show these bytes now or will: what a takedown of
    `image` takes down with it."""
    return Image.objects.same_bytes(image).showing().count()
