"""The outbox tells only what is still true, in the order it was decided: an approval of an
image since taken down is superseded (never sent, visible in the admin), and a notification
waits while an earlier one of the same image is unfinished. Against the loopback PinsterApi."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications import delivery
from notifications.models import Notification
from notifications.tasks import notify_pinster
from tests.notifications.conftest import Clock, make_image, publish
from tests.pinster import PinsterApi, Reply
from uploads.models import EventKind, Image, State

pytestmark = pytest.mark.django_db


def deliver(notification: Notification) -> Notification:
    notify_pinster(str(notification.pk))
    notification.refresh_from_db()
    return notification


def take_down(image: Image) -> Notification:
    """A takedown through the real transition (these rows have no stored original: their
    bytes are blocked by sha256 only)."""
    moderator, _ = User.objects.get_or_create(username="mod")
    with transaction.atomic():
        assert image.take_down(by=moderator, reason="reported")
    return Notification.objects.get(image=image, kind=Notification.Kind.TAKEN_DOWN)


def test_an_approval_of_an_image_taken_down_since_is_superseded_and_never_sent(
    pinster: PinsterApi, clock: Clock
) -> None:
    pinster.answer(Reply(503, retry_after="60"))  # PinsterApi is down for the first attempt
    approval = deliver(publish())
    assert approval.state == Notification.State.PENDING
    takedown = take_down(approval.image)

    clock.advance(seconds=61)  # PinsterApi is back
    approval = deliver(approval)
    takedown = deliver(takedown)

    assert approval.state == Notification.State.SUPERSEDED
    assert approval.failure_reason == "superseded: the image is taken_down now"
    assert approval.delivery_attempts.count() == 1  # the 503; nothing after the takedown
    assert takedown.state == Notification.State.DELIVERED
    assert pinster.delivered_event_ids() == [takedown.event_id]
    timeline = approval.image.events.filter(kind=EventKind.NOTIFICATION)
    assert timeline.filter(reason__startswith="not sent, superseded").count() == 1


def test_an_approval_after_a_restore_waits_for_the_takedown_notice_before_it(
    pinster: PinsterApi, clock: Clock
) -> None:
    image = make_image(state=State.PUBLISHED)
    pinster.answer(Reply(503, retry_after="60"))  # the receiver is down for the takedown
    takedown = deliver(take_down(image))
    assert takedown.state == Notification.State.PENDING
    clock.advance(seconds=1)
    assert image.restore(by=None, reason="appeal upheld", actor="system:test")
    Image.objects.filter(pk=image.pk).update(state=State.PUBLISHING)  # as the worker claims it
    approval = publish(image)

    assert not approval.claim()  # the takedown before it is still to be told
    approval.refresh_from_db()
    assert approval.state == Notification.State.PENDING
    assert approval.next_attempt_at == takedown.next_attempt_at
    clock.advance(seconds=61)
    assert deliver(takedown).state == Notification.State.DELIVERED
    assert deliver(approval).state == Notification.State.DELIVERED
    assert pinster.delivered_event_ids() == [takedown.event_id, approval.event_id]


def test_a_takedown_waits_for_the_approval_in_flight_before_it_and_follows_it_at_once(
    pinster: PinsterApi, django_capture_on_commit_callbacks: Any
) -> None:
    approval = publish()
    assert approval.claim()  # being sent by a worker when the takedown is decided
    takedown = take_down(approval.image)

    assert not takedown.claim()  # the approval before it is in flight: it waits
    with django_capture_on_commit_callbacks(execute=True):
        approval.record(delivery.send(approval))
    takedown.refresh_from_db()
    assert takedown.next_attempt_at is not None
    assert takedown.next_attempt_at <= timezone.now()  # due at once, and enqueued
    takedown = deliver(takedown)

    assert approval.state == Notification.State.DELIVERED
    assert takedown.state == Notification.State.DELIVERED
    assert pinster.delivered_event_ids() == [approval.event_id, takedown.event_id]


def test_rejections_and_takedowns_are_never_superseded(pinster: PinsterApi) -> None:
    image = make_image(state=State.PUBLISHED)
    takedown = take_down(image)
    image.restore(by=None, reason="appeal upheld", actor="system:test")

    assert deliver(takedown).state == Notification.State.DELIVERED


def test_the_admin_lists_superseded_notifications_with_their_reason(
    pinster: PinsterApi, clock: Clock, admin_client: Any
) -> None:
    pinster.answer(Reply(503, retry_after="60"))
    approval = deliver(publish())
    take_down(approval.image)
    clock.advance(seconds=61)
    deliver(approval)

    changelist = reverse("admin:notifications_notification_changelist")
    page = admin_client.get(changelist, {"state__exact": "superseded"})

    assert page.status_code == 200
    text = page.content.decode()
    assert "Not sent (no longer true)" in text
    assert "superseded: the image is taken_down now" in text
