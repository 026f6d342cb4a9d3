"""Background work of the uploads app: publishing (thumbnails), takedowns and the reconciler.

Actors take ids, re-fetch the row, claim the work with a conditional UPDATE, and count attempts
in the database, so a duplicate or redelivered message does nothing and a message that keeps
killing its worker ends in a final state after MAX_STAGE_ATTEMPTS.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from uploads import publishing
from uploads.logging import reset_request_id, set_request_id
from uploads.models import MODERATION, PUBLISHING, EventKind, Image, ImageEvent, Stage, State

log = logging.getLogger(__name__)

THUMBNAIL_TIME_LIMIT_MS = 300_000


def send_safely(actor: Any, *args: Any) -> bool:
    """Enqueue; if the broker is down, log it and leave the image to the reconciler."""
    try:
        actor.send(*args)
    except Exception as exc:  # any broker error: the database still holds the truth
        log.warning("enqueue of %s failed, the reconciler will retry: %s", actor.actor_name, exc)
        return False
    return True


def actor_for(stage: Stage) -> Any:
    from moderation.tasks import moderate_image

    return {MODERATION.name: moderate_image, PUBLISHING.name: make_thumbnails}[stage.name]


def stage_for(state: str) -> Stage | None:
    for stage in (MODERATION, PUBLISHING):
        if state in (stage.pending, stage.working):
            return stage
    return None


def enqueue_for_state(image: Image) -> None:
    """After the transaction commits, hand the image to the actor working on its state."""
    stage = stage_for(image.state)
    if stage is not None:
        image_id = str(image.pk)
        transaction.on_commit(lambda: send_safely(actor_for(stage), image_id))


def run_stage(image_id: str, stage: Stage, lease_seconds: int, work: Any) -> None:
    """Claim, do the work, release on failure (re-raising for Dramatiq's retries), give up
    once the attempts recorded in the database are exhausted."""
    image = Image.objects.filter(pk=image_id).first()
    if image is None or not image.claim(stage, lease_seconds=lease_seconds):
        return
    try:
        work(image)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        if image.attempts >= settings.MAX_STAGE_ATTEMPTS:
            image.give_up(stage, reason=reason, from_state=stage.working)
            log.error("%s gave up on image %s: %s", stage.name, image_id, reason)
            return
        image.release(stage, error=reason)
        raise


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
    run_stage(image_id, PUBLISHING, THUMBNAIL_TIME_LIMIT_MS // 1000 + 30, publish)


def publish(image: Image) -> None:
    keys = publishing.publish_image(image)
    if not image.published(renditions=keys):
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
        ImageEvent.objects.create(
            image=image,
            kind=EventKind.STORAGE,
            actor="system:unpublish_image",
            reason=reason,
            details={"removed": removed, "kept_for": kept_for},
        )


def reconcile_images(limit: int = 500, *, quiet_for: float | None = None) -> int:
    """Re-enqueue images whose state has not moved for `quiet_for` seconds (default
    STALE_AFTER_SECONDS). Returns how many were enqueued. Safe to run twice."""
    count = 0
    stale = Image.objects.stale(quiet_for=quiet_for).order_by("state_changed_at")[:limit]
    for image in stale:
        stage = stage_for(image.state)
        if stage is None:
            continue
        now = timezone.now()
        if not Image.objects.filter(pk=image.pk, state=image.state).update(enqueued_at=now):
            continue
        ImageEvent.objects.create(
            image=image,
            kind=EventKind.RECONCILED,
            from_state=image.state,
            to_state=image.state,
            actor="system:reconciler",
            reason=f"no progress since {image.state_changed_at:%Y-%m-%d %H:%M:%S}",
        )
        token = set_request_id(image.request_id)  # the upload's request id follows the retry
        try:
            if send_safely(actor_for(stage), str(image.pk)):
                count += 1
        finally:
            reset_request_id(token)
    return count
