"""Delivery of notifications to PinsterApi. Retries are kept in the database: the actor makes
at most one attempt per message, and the periodic job enqueues what has become due."""

from __future__ import annotations

import logging
from datetime import datetime

import dramatiq
from django.conf import settings
from django.utils import timezone

from infra.broker import send_safely
from notifications import delivery
from notifications.models import Notification

log = logging.getLogger(__name__)

NOTIFY_TIME_LIMIT_MS = int((settings.NOTIFY_TOTAL_TIMEOUT + 30) * 1000)


@dramatiq.actor(
    queue_name="notifications",
    max_retries=3,
    min_backoff=5_000,
    max_backoff=60_000,
    time_limit=NOTIFY_TIME_LIMIT_MS,
)
def notify_pinster(notification_id: str) -> None:
    """Make one delivery attempt if the notification is due. Safe to run twice: a duplicate
    message finds it delivered, failed, not yet due or held by another worker, and returns."""
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None or not notification.claim():
        return
    notification.record(delivery.send(notification))


def enqueue_due_notifications(limit: int = 500, *, now: datetime | None = None) -> int:
    """Enqueue delivery of the notifications whose next attempt is due. Returns how many were
    enqueued. Safe to run concurrently from many processes: each one is taken with a
    conditional UPDATE, so exactly one process enqueues it."""
    now = now or timezone.now()
    due = Notification.objects.due(now).order_by("next_attempt_at")
    count = 0
    for pk in due.values_list("pk", flat=True)[:limit]:
        if not Notification.objects.due(now).filter(pk=pk).update(enqueued_at=now):
            continue  # another process took it
        if send_safely(notify_pinster, str(pk)):
            count += 1
        else:
            Notification.objects.filter(pk=pk).update(enqueued_at=None)
            break  # the broker is down: the next round tries again
    return count
