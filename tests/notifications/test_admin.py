"""Deliveries in the admin: per image, the failed ones, read-only attempts, and Redeliver."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from dramatiq import Message

from notifications.admin import deliveries_url
from notifications.models import Notification
from notifications.tasks import notify_pinster
from tests.notifications.conftest import make_image, publish
from tests.pinster import PinsterApi

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:notifications_notification_changelist"


def delivered(status: int, pinster: PinsterApi) -> Notification:
    """A notification after one attempt answered with `status`."""
    pinster.answer(status)
    notification = publish()
    notify_pinster(notification.event_id)
    notification.refresh_from_db()
    return notification


def redeliver(client: Client, *notifications: Notification) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": "redeliver", "_selected_action": [n.pk for n in notifications]},
        follow=True,
    )


def queued_ids(broker: Any) -> list[str]:
    queue = broker.queues.get("notifications")
    return [Message.decode(raw).args[0] for raw in list(queue.queue)] if queue else []


def staff(*permissions: str) -> Client:
    user = User.objects.create_user(f"staff{User.objects.count()}", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_failed_deliveries_are_one_filter_away(
    admin_client: Client, pinster: PinsterApi
) -> None:
    failed = delivered(422, pinster)
    ok = delivered(201, pinster)

    response = admin_client.get(reverse(CHANGELIST), {"state__exact": "failed"})

    assert response.status_code == 200
    page = response.content.decode()
    assert failed.image.md5 in page
    assert "refused by the receiver: HTTP 422" in page
    assert ok.image.md5 not in page


def test_an_images_deliveries_are_listed_at_its_link(
    admin_client: Client, pinster: PinsterApi
) -> None:
    mine = delivered(201, pinster)
    other = delivered(201, pinster)

    response = admin_client.get(deliveries_url(mine.image))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [mine]
    assert other.image.md5 not in response.content.decode()


def test_the_image_page_shows_its_deliveries(admin_client: Client, pinster: PinsterApi) -> None:
    notification = delivered(503, pinster)

    response = admin_client.get(reverse("admin:uploads_image_change", args=[notification.image.pk]))

    assert response.status_code == 200
    assert notification.event_id in response.content.decode()


def test_a_delivery_shows_its_attempts_and_cannot_be_added_changed_or_deleted(
    admin_client: Client, pinster: PinsterApi
) -> None:
    notification = delivered(503, pinster)
    change = reverse("admin:notifications_notification_change", args=[notification.pk])

    response = admin_client.get(change)

    page = response.content.decode()
    assert response.status_code == 200
    assert "503" in page
    assert notification.image.md5 in page  # the body that was sent
    assert 'name="_save"' not in page
    assert admin_client.post(change, {"state": "delivered"}).status_code == 403
    assert admin_client.get(reverse("admin:notifications_notification_add")).status_code == 403
    delete = reverse("admin:notifications_notification_delete", args=[notification.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in page
    notification.refresh_from_db()
    assert notification.state == Notification.State.PENDING


def test_redeliver_sends_again_with_the_same_event_id_and_a_fresh_token(
    admin_client: Client,
    pinster: PinsterApi,
    broker: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    notification = delivered(422, pinster)
    assert notification.state == Notification.State.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        response = redeliver(admin_client, notification)

    assert "1 notification(s) queued for redelivery." in response.content.decode()
    assert queued_ids(broker) == [notification.event_id]
    notify_pinster(notification.event_id)
    first, second = pinster.requests()
    assert first.event_id == second.event_id == notification.event_id
    assert first.token != second.token
    assert (first.status, second.status) == (422, 201)
    notification.refresh_from_db()
    assert notification.state == Notification.State.DELIVERED
    reasons = list(notification.image.events.values_list("actor", "reason"))
    assert ("user:admin", "redelivery requested") in reasons


def test_staff_who_may_only_view_see_deliveries_but_cannot_redeliver(
    pinster: PinsterApi, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    notification = delivered(422, pinster)
    viewer = staff("view_notification", "view_deliveryattempt")

    page = viewer.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert 'value="redeliver"' not in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        redeliver(viewer, notification)

    notification.refresh_from_db()
    assert notification.state == Notification.State.FAILED
    assert queued_ids(broker) == []


def test_the_redeliver_permission_is_enough_to_redeliver(
    pinster: PinsterApi, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    notification = delivered(422, pinster)
    operator = staff("view_notification", "redeliver_notification")

    assert 'value="redeliver"' in operator.get(reverse(CHANGELIST)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        redeliver(operator, notification)

    assert queued_ids(broker) == [notification.event_id]


def test_redelivering_a_rejection_with_no_url_configured_says_why_it_did_not(
    admin_client: Client, settings: Any
) -> None:
    settings.REJECTION_NOTIFY_URL = ""
    image = make_image(state="rejected", decision_reason="spam")
    notification = Notification.objects.create_for(image, Notification.Kind.REJECTED)

    response = redeliver(admin_client, notification)

    assert "not redelivered" in response.content.decode()
    notification.refresh_from_db()
    assert notification.state == Notification.State.SKIPPED


def test_a_skipped_rejection_is_sent_when_redelivered_once_a_url_is_configured(
    admin_client: Client,
    pinster: PinsterApi,
    broker: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver = settings.REJECTION_NOTIFY_URL
    settings.REJECTION_NOTIFY_URL = ""
    image = make_image(state="rejected", decision_reason="spam")
    notification = Notification.objects.create_for(image, Notification.Kind.REJECTED)
    settings.REJECTION_NOTIFY_URL = receiver

    with django_capture_on_commit_callbacks(execute=True):
        redeliver(admin_client, notification)
    notify_pinster(notification.event_id)

    assert pinster.deliveries_per_event() == {notification.event_id: 1}
    notification.refresh_from_db()
    assert (notification.state, notification.url) == (Notification.State.DELIVERED, receiver)
