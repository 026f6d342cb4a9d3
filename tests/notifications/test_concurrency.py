"""Many workers, each running the periodic job and the actor: every due notification is enqueued
once per due time, attempted by one worker at a time, and nothing is lost with a dead worker or
a lost message."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from dramatiq import Message

from notifications.models import SENDING_LEASE_SECONDS, Notification
from notifications.tasks import enqueue_due_notifications, notify_pinster
from tests.notifications.conftest import Clock, publish
from tests.pinster import PinsterApi, Reply


def queued_ids(broker: Any) -> list[str]:
    queue = broker.queues.get("notifications")
    return [Message.decode(raw).args[0] for raw in list(queue.queue)] if queue else []


def in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads released at once, each with its own database connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_many_workers_enqueue_each_due_notification_exactly_once(broker: Any, clock: Clock) -> None:
    notifications = [publish() for _ in range(30)]
    broker.flush_all()  # drop the messages sent on commit, as if they were lost
    clock.advance(hours=1)

    counts = in_threads(8, enqueue_due_notifications)

    assert sum(counts) == 30
    assert Counter(queued_ids(broker)) == {n.event_id: 1 for n in notifications}


@pytest.mark.django_db
def test_only_due_notifications_are_enqueued(broker: Any, clock: Clock) -> None:
    due = publish()
    later = publish()
    Notification.objects.filter(pk=later.pk).update(next_attempt_at=clock.now + timedelta(hours=1))
    done = publish()
    Notification.objects.filter(pk=done.pk).update(state=Notification.State.DELIVERED)
    broker.flush_all()
    clock.advance(hours=1, seconds=-1)

    assert enqueue_due_notifications() == 1
    assert enqueue_due_notifications() == 0  # already enqueued for this due time
    assert queued_ids(broker) == [due.event_id]


@pytest.mark.django_db
def test_a_lost_message_is_enqueued_again_after_the_stale_period(
    broker: Any, clock: Clock, settings: Any
) -> None:
    notification = publish()
    broker.flush_all()

    assert enqueue_due_notifications() == 0  # just enqueued on commit
    clock.advance(seconds=settings.STALE_AFTER_SECONDS)
    assert enqueue_due_notifications() == 1
    assert queued_ids(broker) == [notification.event_id]


@pytest.mark.django_db
def test_an_attempt_abandoned_by_a_dead_worker_is_taken_over_after_its_lease(
    pinster: PinsterApi, broker: Any, clock: Clock
) -> None:
    notification = publish()
    assert notification.claim()  # ... and the worker dies mid-request
    broker.flush_all()

    notify_pinster(notification.event_id)
    assert enqueue_due_notifications() == 0
    assert pinster.requests() == []

    clock.advance(seconds=SENDING_LEASE_SECONDS + 1)
    assert enqueue_due_notifications() == 1
    notify_pinster(notification.event_id)

    notification.refresh_from_db()
    assert notification.state == Notification.State.DELIVERED
    assert notification.attempts == 2
    assert pinster.deliveries_per_event() == {notification.event_id: 1}


@pytest.mark.django_db
def test_a_notification_whose_attempts_keep_killing_the_worker_fails_after_a_bounded_number(
    pinster: PinsterApi, broker: Any, clock: Clock, settings: Any
) -> None:
    settings.MAX_STAGE_ATTEMPTS = 3
    notification = publish()
    for _ in range(3):  # each attempt claims, then its worker is SIGKILLed before recording
        notification.refresh_from_db()
        assert notification.claim()
        clock.advance(seconds=SENDING_LEASE_SECONDS + 1)
    broker.flush_all()

    assert enqueue_due_notifications() == 1  # the abandoned attempt is due again ...
    notify_pinster(notification.event_id)  # ... and the next message gives up instead

    notification.refresh_from_db()
    assert notification.state == Notification.State.FAILED
    assert "3 attempts in a row never finished" in notification.failure_reason
    assert notification.attempts == 3
    assert pinster.requests() == []
    assert enqueue_due_notifications() == 0
    assert notification.image.events.filter(reason__contains="never finished").exists()
    clock.advance(hours=1)
    assert enqueue_due_notifications() == 0
    attempt = notification.delivery_attempts.get()
    assert (attempt.number, attempt.result) == (3, Notification.State.FAILED)

    # Staff redeliver it: the count starts again, and the next attempt is made.
    assert notification.redeliver(by=User.objects.create_user("operator"))
    notify_pinster(notification.event_id)
    notification.refresh_from_db()
    assert notification.state == Notification.State.DELIVERED
    assert pinster.deliveries_per_event() == {notification.event_id: 1}


@pytest.mark.django_db
def test_attempts_that_finished_do_not_count_as_abandoned(
    pinster: PinsterApi, clock: Clock, settings: Any
) -> None:
    settings.MAX_STAGE_ATTEMPTS = 2
    pinster.answer(503, 503)  # then 201
    notification = publish()
    assert notification.claim()  # an abandoned attempt ...
    clock.advance(seconds=SENDING_LEASE_SECONDS + 1)
    for _ in range(2):  # ... then two answered failures: retried as usual
        notify_pinster(notification.event_id)
        notification.refresh_from_db()
        clock.advance(hours=1)
    assert notification.claim()  # one abandoned attempt since the last answer: below the bound
    clock.advance(seconds=SENDING_LEASE_SECONDS + 1)

    notify_pinster(notification.event_id)

    notification.refresh_from_db()
    assert notification.state == Notification.State.DELIVERED
    assert notification.attempts == 5


@pytest.mark.django_db(transaction=True)
def test_duplicate_messages_make_a_single_attempt(pinster: PinsterApi) -> None:
    pinster.answer(Reply(201, delay=0.5))  # long enough for every duplicate to arrive meanwhile
    notification = publish()

    in_threads(6, lambda: notify_pinster(notification.event_id))

    assert pinster.deliveries_per_event() == {notification.event_id: 1}
    assert len(pinster.requests()) == 1
    notification.refresh_from_db()
    assert (notification.state, notification.attempts) == (Notification.State.DELIVERED, 1)


@pytest.mark.django_db
def test_a_redelivery_is_refused_while_an_attempt_is_in_flight(clock: Clock) -> None:
    notification = publish()
    assert notification.claim()
    operator = User.objects.create_user("operator")

    assert not notification.redeliver(by=operator)
    clock.advance(seconds=SENDING_LEASE_SECONDS + 1)  # the worker died: its lease ran out
    assert notification.redeliver(by=operator)
    notification.refresh_from_db()
    assert notification.state == Notification.State.PENDING
