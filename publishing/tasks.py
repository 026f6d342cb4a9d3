"""Publishing's actors: make the public objects of an approved image, remove them after a
takedown or a failure."""

from __future__ import annotations

import dramatiq
from django.conf import settings

from publishing import services as publishing
from uploads.models import PUBLISHING, Actor, EventKind, Image, State, record_event
from uploads.pipeline import run_stage

THUMBNAIL_TIME_LIMIT_MS = 300_000


@dramatiq.actor(
    queue_name="thumbnails",
    max_retries=settings.MAX_STAGE_ATTEMPTS,
    min_backoff=2_000,
    max_backoff=120_000,
    time_limit=THUMBNAIL_TIME_LIMIT_MS,
)
def make_thumbnails(image_id: str) -> None:
    """Publish an approved image: stripped original and thumbnails, then tell Pinster.
    Safe to run twice: a rerun rewrites the same keys."""
    run_stage(image_id, PUBLISHING, publish)


def publish(image: Image) -> None:
    keys = publishing.publish_image(image)
    placeholder = publishing.placeholder_for(keys)
    if not image.published(renditions=keys, placeholder=placeholder):
        # Taken down meanwhile (its unpublishing may have run before these writes), or its
        # lease lost to another worker: remove what is not shown by a published image.
        publishing.release_public_objects(image.md5)


@dramatiq.actor(queue_name="thumbnails", max_retries=10, min_backoff=5_000, time_limit=120_000)
def unpublish_image(image_id: str) -> None:
    """Remove the public objects of a taken-down or failed image, unless another image of the
    same bytes shows them. Safe to run twice."""
    image = Image.objects.filter(pk=image_id, state__in=[State.TAKEN_DOWN, State.FAILED]).first()
    if image is not None:
        removed, kept_for = publishing.release_public_objects(image.md5)
        if not removed and kept_for is None and image.state == State.FAILED:
            return  # nothing was written: no event for the many failures that never published
        reason = "public objects removed"
        if kept_for is not None:
            reason = f"public objects kept: image {kept_for} of the same bytes still shows them"
        record_event(
            image.pk,
            EventKind.STORAGE,
            actor=Actor.UNPUBLISH_IMAGE,
            reason=reason,
            details={"removed": removed, "kept_for": kept_for},
        )
