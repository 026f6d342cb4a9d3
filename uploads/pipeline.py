"""How an image's background work runs: stages, their actors, and the reconciler.

The actors live in the apps that do the work (moderation.tasks, publishing.tasks) and register
themselves here for their stage in `AppConfig.ready()`. Every actor takes an id, re-fetches the
row, claims the work with a conditional UPDATE and counts attempts in the database, so a
duplicate or redelivered message does nothing and a message that keeps killing its worker ends
in a final state after MAX_STAGE_ATTEMPTS.

A claim holds the image under a short lease (LEASE_SECONDS) that a heartbeat thread renews
while the work runs, so the image of a worker that died is free again within LEASE_SECONDS,
however long the stage's time limit is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from infra.broker import send_safely
from infra.logging import reset_request_id, set_request_id
from uploads.models import STAGES, Actor, EventKind, Image, Stage, record_event

log = logging.getLogger(__name__)

_actors: dict[str, Any] = {}


def register_actor(stage: Stage, actor: Any) -> None:
    """The Dramatiq actor that works on `stage` (called from the owning app's ready())."""
    _actors[stage.name] = actor


def actor_for(stage: Stage) -> Any:
    try:
        return _actors[stage.name]
    except KeyError:
        raise ImproperlyConfigured(f"no actor registered for the {stage.name} stage") from None


def stage_for(state: str) -> Stage | None:
    for stage in STAGES:
        if state in (stage.pending, stage.working):
            return stage
    return None


# `enqueued_at` at this instant marks an image whose enqueue failed (the broker was down): the
# reconciler takes it at its next round instead of after STALE_AFTER_SECONDS. Any time that far
# back also reads as "long ago" to the stale query, so no other rule changes.
ENQUEUE_FAILED = datetime(1970, 1, 1, tzinfo=UTC)


def enqueue_for_state(image: Image) -> None:
    """After the transaction commits, hand the image to the actor working on its state."""
    stage = stage_for(image.state)
    if stage is not None:
        image_id, state = str(image.pk), image.state
        transaction.on_commit(lambda: send_or_mark(actor_for(stage), image_id, state))


def send_or_mark(actor: Any, image_id: str, state: str) -> bool:
    """Send; if the broker fails, mark the image (still in `state`) for the next round."""
    if send_safely(actor, image_id):
        return True
    try:
        Image.objects.filter(pk=image_id, state=state).update(enqueued_at=ENQUEUE_FAILED)
    except DatabaseError:
        log.warning("could not mark image %s for the reconciler; it is found when stale", image_id)
    return False


def failed_enqueues() -> Any:
    """Images in a stage's state whose last enqueue failed."""
    states = [state for stage in STAGES for state in (stage.pending, stage.working)]
    return Image.objects.filter(enqueued_at=ENQUEUE_FAILED, state__in=states)


def run_stage(image_id: str, stage: Stage, work: Any, *, lease_seconds: int | None = None) -> None:
    """Claim, do the work under a renewed lease, release on failure (re-raising for
    Dramatiq's retries), give up once the attempts recorded in the database are exhausted."""
    lease = lease_seconds or settings.LEASE_SECONDS
    image = Image.objects.filter(pk=image_id).first()
    if image is None or not image.claim(stage, lease_seconds=lease):
        return
    try:
        with heartbeat(image, stage, lease):
            work(image)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        if image.attempts >= settings.MAX_STAGE_ATTEMPTS:
            image.give_up(stage, reason=reason, from_state=stage.working)
            log.error("%s gave up on image %s: %s", stage.name, image_id, reason)
            return
        image.release(stage, error=reason)
        raise


@contextmanager
def heartbeat(image: Image, stage: Stage, lease_seconds: int) -> Iterator[None]:
    """Renew the image's lease every third of it while the body runs, from a thread with its
    own database connection; stops when the body ends or the lease is no longer this one's."""
    stopped = threading.Event()

    def beat() -> None:
        try:
            while not stopped.wait(lease_seconds / 3):
                try:
                    if not image.renew_lease(stage, lease_seconds=lease_seconds):
                        return
                except Exception:  # the database is briefly away: try again next beat
                    log.warning("could not renew the lease of image %s", image.pk, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"lease-{image.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join(timeout=5)


def take_back_leases(before: Any) -> int:
    """Free the leases of every image claimed before `before` (the start of this process), for
    a process that knows no other one can hold them (the embedded worker: one process); the
    reconciler then re-enqueues them at once. Returns how many."""
    working = [stage.working for stage in STAGES]
    held = Image.objects.filter(state__in=working, lease_until__isnull=False)
    return held.filter(state_changed_at__lt=before).update(lease_until=None)


def reconcile_images(limit: int = 500, *, quiet_for: float | None = None) -> int:
    """Re-enqueue images whose last enqueue failed, and images whose state has not moved for
    `quiet_for` seconds (default STALE_AFTER_SECONDS). Returns how many were enqueued. Safe to
    run twice."""
    count = 0
    failed = list(failed_enqueues().order_by("state_changed_at")[:limit])
    stale = Image.objects.stale(quiet_for=quiet_for).order_by("state_changed_at")[:limit]
    for image in failed + [image for image in stale if image.enqueued_at != ENQUEUE_FAILED]:
        stage = stage_for(image.state)
        if stage is None:
            continue
        now = timezone.now()
        if not Image.objects.filter(pk=image.pk, state=image.state).update(enqueued_at=now):
            continue
        if image.enqueued_at == ENQUEUE_FAILED:
            reason = "its last enqueue failed (broker unavailable)"
        else:
            reason = f"no progress since {image.state_changed_at:%Y-%m-%d %H:%M:%S}"
        record_event(
            image.pk,
            EventKind.RECONCILED,
            actor=Actor.RECONCILER,
            from_state=image.state,
            to_state=image.state,
            reason=reason,
        )
        token = set_request_id(image.request_id)  # the upload's request id follows the retry
        try:
            if send_or_mark(actor_for(stage), str(image.pk), image.state):
                count += 1
        finally:
            reset_request_id(token)
    return count
