"""Scrape-time metrics of the apps' tables: images waiting at each stage, the review queue and
the notification outbox. Registered with infra.metrics by the project's AppConfig."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connections, transaction
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from infra.metrics import age, gauge, statement_timeout_ms
from notifications.models import Notification
from uploads.models import FINAL_STATES, Image, State


def database_metrics() -> Iterator[Metric]:
    now = timezone.now()
    with transaction.atomic(), connections["default"].cursor() as cursor:
        if connections["default"].vendor == "postgresql":
            cursor.execute("SET LOCAL statement_timeout = %s", [statement_timeout_ms()])
        waiting = dict(
            Image.objects.exclude(state__in=FINAL_STATES)
            .values("state")
            .annotate(n=Count("pk"))
            .values_list("state", "n")
        )
        review = Image.objects.filter(state=State.IN_REVIEW).aggregate(
            n=Count("pk"), oldest=Min("state_changed_at")
        )
        stale = Image.objects.stale(now).count()
        outbox = Notification.objects.filter(
            state__in=[Notification.State.PENDING, Notification.State.SENDING]
        ).aggregate(n=Count("pk"), oldest=Min("created_at"))
        failed = Notification.objects.filter(state=Notification.State.FAILED).count()

    images = GaugeMetricFamily(
        "imageservice_images", "Images not yet in a final state, by state", labels=["state"]
    )
    for state in State:
        if state not in FINAL_STATES:
            images.add_metric([state.value], waiting.get(state.value, 0))
    yield images
    yield gauge("imageservice_images_stale", "Images whose work has not moved in time", stale)
    yield gauge("imageservice_review_queue_length", "Images waiting for a moderator", review["n"])
    yield gauge(
        "imageservice_review_queue_oldest_seconds",
        "How long the oldest image in review has waited (0 when none)",
        age(now, review["oldest"]),
    )
    yield gauge(
        "imageservice_notifications_pending", "Notifications not yet delivered", outbox["n"]
    )
    yield gauge(
        "imageservice_notification_oldest_pending_seconds",
        "Age of the oldest notification not yet delivered (0 when none)",
        age(now, outbox["oldest"]),
    )
    yield gauge(
        "imageservice_notifications_failed", "Notifications that will not be retried", failed
    )
