"""The fault test: PinsterApi is down for a (simulated) day while 50 images are approved. When it
comes back, every image is delivered exactly once per event id and nothing is left pending.

The real pipeline runs: the publication hook writes the outbox row, the stub broker and a worker
deliver, and the periodic job enqueues what the clock has made due. Only Django's clock is moved,
in 15-minute steps; connections to the stopped server are really refused."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.models import DeliveryAttempt, Notification
from notifications.tasks import enqueue_due_notifications
from tests.notifications.conftest import Clock, publish
from tests.pinster import PinsterApi
from uploads.models import EventKind, ImageEvent

STEP_MINUTES = 15
DAY_STEPS = 24 * 60 // STEP_MINUTES
IMAGES = 50


def run_periodic_round(broker: Any, worker: Any, clock: Clock) -> None:
    enqueue_due_notifications()
    broker.join("notifications")
    worker.join()
    clock.advance(minutes=STEP_MINUTES)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_after_a_day_down_every_image_reaches_pinster_exactly_once(
    pinster: PinsterApi, broker: Any, stub_worker: Any, clock: Clock
) -> None:
    pinster.stop()
    approvals = {i * DAY_STEPS // IMAGES for i in range(IMAGES)}  # spread over the day
    for step in range(DAY_STEPS):
        if step in approvals:
            publish()
        run_periodic_round(broker, stub_worker, clock)

    assert Notification.objects.filter(state=Notification.State.PENDING).count() == IMAGES
    attempts_while_down = DeliveryAttempt.objects.count()
    assert attempts_while_down > 5 * IMAGES  # it kept trying, with backoff, all day
    assert not DeliveryAttempt.objects.exclude(error__startswith="ConnectionError").exists()

    pinster.start()
    rounds_to_drain = 0
    while Notification.objects.exclude(state=Notification.State.DELIVERED).exists():
        # The first success brings the rest forward: no waiting out 6-hour backoffs.
        assert rounds_to_drain < 60 // STEP_MINUTES, "not drained within an hour"
        run_periodic_round(broker, stub_worker, clock)
        rounds_to_drain += 1

    event_ids = {str(pk) for pk in Notification.objects.values_list("pk", flat=True)}
    assert len(event_ids) == IMAGES
    assert pinster.deliveries_per_event() == dict.fromkeys(event_ids, 1)
    assert len(pinster.requests()) == IMAGES  # not one duplicate, even a refused one
    told = ImageEvent.objects.filter(kind=EventKind.NOTIFICATION, reason__startswith="PinsterApi")
    assert told.count() == IMAGES
    print(
        f"\n{IMAGES} images, PinsterApi down {DAY_STEPS * STEP_MINUTES / 60:.0f} h: "
        f"{attempts_while_down} refused attempts while down, all delivered within "
        f"{rounds_to_drain * STEP_MINUTES} min of its return"
    )
