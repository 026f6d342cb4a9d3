"""The notification is part of the decision: written in its transaction, sent after it commits."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from dramatiq import Message

from notifications.models import Notification
from notifications.tasks import enqueue_due_notifications, notify_pinster
from tests.conftest import queued_messages
from tests.notifications.conftest import Clock, make_image, notify, publish
from uploads.models import EventKind, State

pytestmark = pytest.mark.django_db


def queued_ids(broker: Any) -> list[str]:
    """The notification ids of the messages waiting on the notifications queue."""
    queue = broker.queues.get("notifications")
    return [Message.decode(raw).args[0] for raw in list(queue.queue)] if queue else []


def test_publication_writes_a_pending_notification_and_enqueues_it_on_commit(
    broker: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    image = make_image()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = publish(image)
        assert queued_messages(broker) == 0

    assert notification.state == Notification.State.PENDING
    assert notification.kind == Notification.Kind.APPROVED
    assert notification.url == f"{settings.PINSTER_API_URL}/v1/images/"
    assert notification.body["data"]["base_file_name"] == image.md5
    assert notification.next_attempt_at == notification.created_at
    for callback in callbacks:
        callback()
    assert queued_ids(broker) == [notification.event_id]


def test_a_rolled_back_decision_leaves_no_notification_and_sends_nothing(
    broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image()

    def decide_then_fail() -> None:
        with transaction.atomic():
            publish(image)
            raise RuntimeError("the decision failed after the hook")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        decide_then_fail()

    assert not Notification.objects.exists()
    assert queued_messages(broker) == 0
    image.refresh_from_db()
    assert image.state == State.PUBLISHING


@override_settings(REJECTION_NOTIFY_URL="")
def test_a_rejection_without_a_configured_url_is_recorded_as_not_sent(
    broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        notification = notify(Notification.Kind.REJECTED)

    assert notification.state == Notification.State.SKIPPED
    assert notification.next_attempt_at is None
    assert queued_messages(broker) == 0
    assert enqueue_due_notifications() == 0
    event = notification.image.events.get(kind=EventKind.NOTIFICATION)
    assert event.reason == "not sent: REJECTION_NOTIFY_URL is not set"


def test_a_broker_outage_leaves_the_notification_to_the_periodic_job(
    broker: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(notify_pinster, "send", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            notification = publish()
        notification.refresh_from_db()
        assert notification.enqueued_at is None
        assert enqueue_due_notifications() == 0  # still down: nothing sent, nothing lost
        assert Notification.objects.get().enqueued_at is None

    assert enqueue_due_notifications() == 1
    assert queued_ids(broker) == [notification.event_id]


def test_a_rejection_takes_the_labels_of_the_latest_moderation(clock: Clock) -> None:
    image = make_image(state=State.REJECTED, decision_reason="nudity")
    old = [{"name": "Suggestive", "confidence": 61.0}]
    new = [{"name": "Explicit Nudity", "confidence": 99.1}]
    image.events.create(at=clock.now, kind=EventKind.TRANSITION, details={"labels": old})
    image.events.create(
        at=clock.advance(minutes=5), kind=EventKind.TRANSITION, details={"labels": new}
    )

    notification = notify(Notification.Kind.REJECTED, image)

    assert notification.body["data"]["labels"] == new
    assert notification.body["data"]["user_id"] == image.user_id


def test_a_rejection_without_any_moderation_result_has_no_labels() -> None:
    notification = notify(Notification.Kind.REJECTED)

    assert notification.body["data"]["labels"] == []
    assert notification.body["data"]["reason"] == "nudity"


def test_a_rejection_prefers_the_labels_of_the_latest_decided_moderation_result(
    clock: Clock,
) -> None:
    from moderation.models import ModerationResult

    image = make_image(state=State.REJECTED, decision_reason="nudity")
    image.events.create(kind=EventKind.TRANSITION, details={"labels": [{"name": "Old"}]})
    decided = [{"name": "Explicit Nudity", "parent": "", "confidence": 98.5}]
    ModerationResult.objects.create(
        image=image, created_at=clock.now, backend="b", labels=decided, outcome=State.REJECTED
    )
    ModerationResult.objects.create(
        image=image, created_at=clock.advance(minutes=1), backend="b", error="timeout"
    )

    notification = notify(Notification.Kind.REJECTED, image)

    assert notification.body["data"]["labels"] == decided
