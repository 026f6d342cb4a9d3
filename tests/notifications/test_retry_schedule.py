"""Retries over about three days, kept in the database, checked by moving Django's clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from notifications.models import (
    RETRY_BASE_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    Notification,
    retry_delay,
)
from notifications.tasks import enqueue_due_notifications, notify_pinster
from tests.notifications.conftest import Clock, publish
from tests.pinster import PinsterApi, Reply

pytestmark = pytest.mark.django_db


def run_until_settled(notification: Notification, clock: Clock) -> list[timedelta]:
    """Jump the clock to each next attempt and make it; returns the waits between attempts."""
    waits = []
    notify_pinster(notification.event_id)
    notification.refresh_from_db()
    while notification.state == Notification.State.PENDING:
        assert notification.next_attempt_at is not None
        waits.append(notification.next_attempt_at - clock.now)
        clock.now = notification.next_attempt_at
        notify_pinster(notification.event_id)
        notification.refresh_from_db()
    return waits


@pytest.mark.parametrize("attempts", range(1, 25))
def test_the_wait_doubles_from_a_minute_up_to_six_hours_with_jitter(attempts: int) -> None:
    nominal = min(RETRY_MAX_DELAY_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempts - 1))
    waits = [retry_delay(attempts).total_seconds() for _ in range(200)]

    assert all(nominal / 2 <= wait <= nominal for wait in waits)
    assert max(waits) - min(waits) > nominal / 10  # jittered, so many workers do not stampede


def test_a_notification_is_retried_for_three_days_then_marked_failed(
    pinster: PinsterApi, clock: Clock
) -> None:
    pinster.stop()
    notification = publish()
    started = clock.now

    waits = run_until_settled(notification, clock)

    assert notification.state == Notification.State.FAILED
    assert clock.now == started + timedelta(hours=72)
    assert notification.failure_reason.startswith(
        f"gave up after {notification.attempts} attempts; last: ConnectionError"
    )
    assert 18 <= notification.attempts <= 30
    assert notification.delivery_attempts.count() == notification.attempts
    assert waits[:3] == sorted(waits[:3])
    assert max(waits) <= timedelta(seconds=RETRY_MAX_DELAY_SECONDS)
    assert notification.image.events.get(kind="notification").reason.startswith(
        "notification failed: gave up"
    )


@override_settings(NOTIFY_RETRY_HOURS=1)
def test_the_retry_window_follows_notify_retry_hours(pinster: PinsterApi, clock: Clock) -> None:
    pinster.stop()
    notification = publish()
    started = clock.now

    run_until_settled(notification, clock)

    assert notification.state == Notification.State.FAILED
    assert clock.now == started + timedelta(hours=1)
    assert 5 <= notification.attempts <= 8


def test_a_message_before_the_next_attempt_is_due_makes_no_attempt(
    pinster: PinsterApi, clock: Clock
) -> None:
    pinster.answer(500)
    notification = publish()
    notify_pinster(notification.event_id)
    notification.refresh_from_db()

    clock.now = notification.next_attempt_at - timedelta(seconds=1)
    notify_pinster(notification.event_id)
    assert enqueue_due_notifications() == 0
    assert len(pinster.requests()) == 1

    clock.advance(seconds=1)
    notify_pinster(notification.event_id)
    assert pinster.deliveries_per_event() == {notification.event_id: 1}


def test_a_delivery_after_a_dozen_errors_is_recorded_attempt_by_attempt(
    pinster: PinsterApi, clock: Clock
) -> None:
    pinster.answer(*[503] * 12)
    notification = publish()

    run_until_settled(notification, clock)

    assert notification.state == Notification.State.DELIVERED
    statuses = list(notification.delivery_attempts.values_list("status_code", flat=True))
    assert statuses == [503] * 12 + [201]
    assert notification.failure_reason == ""


def test_a_delivery_brings_forward_what_waits_for_the_same_receiver(
    pinster: PinsterApi, clock: Clock
) -> None:
    pinster.answer(503, Reply(429, retry_after="3600"))
    waiting, limited = publish(), publish()
    notify_pinster(waiting.event_id)
    notify_pinster(limited.event_id)
    clock.advance(seconds=5)

    notify_pinster(publish().event_id)  # PinsterApi answers again

    waiting.refresh_from_db()
    limited.refresh_from_db()
    assert waiting.next_attempt_at == clock.now
    assert limited.next_attempt_at > clock.now + timedelta(minutes=59)  # its Retry-After holds
