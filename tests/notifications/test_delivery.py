"""One attempt against the loopback PinsterApi, and what each kind of answer leads to."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import storages
from django.test import override_settings
from django.utils import timezone

from notifications.models import Notification
from notifications.tasks import notify_pinster
from tests.notifications.conftest import Clock, make_image, notify, publish
from tests.pinster import REJECTIONS_PATH, PinsterApi, Reply
from uploads.models import EventKind, State

pytestmark = pytest.mark.django_db


def deliver(notification: Notification) -> Notification:
    notify_pinster(str(notification.pk))
    notification.refresh_from_db()
    return notification


def test_an_approved_image_is_created_in_pinster_with_exactly_the_contract_body(
    pinster: PinsterApi,
) -> None:
    featured = timezone.now().replace(microsecond=0)
    image = make_image(
        name="Harbour",
        description="At dawn",
        featured=featured,
        blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        dominant_color="#7a5c3e",
    )
    notification = deliver(publish(image))

    [received] = pinster.requests()
    assert received.errors == []
    assert received.body == {
        "data": {
            "imageable_type": "Pin",
            "imageable_id": image.imageable_id,
            "base_file_name": image.md5,
            "storage_location_uri": storages["public"].url(image.md5),
            "thumbnailable": True,
            "name": "Harbour",
            "description": "At dawn",
            "featured": featured.isoformat().replace("+00:00", "Z"),
            # The placeholder: keys PinsterApi's strong parameters do not permit are dropped.
            "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
            "dominant_color": "#7a5c3e",
        }
    }
    assert received.headers["content-type"] == "application/json"
    assert (
        received.headers["idempotency-key"]
        == received.headers["x-event-id"]
        == notification.event_id
    )
    assert notification.state == Notification.State.DELIVERED
    assert notification.delivered_at is not None


def test_the_token_is_rs256_for_pinster_about_this_imageable_and_short_lived(
    pinster: PinsterApi, settings: Any
) -> None:
    image = make_image()
    deliver(publish(image))

    [received] = pinster.requests()
    claims = received.claims
    assert (claims["iss"], claims["aud"]) == (settings.IMAGE_SERVICE_URL, pinster.url)
    assert (claims["imageable_type"], claims["imageable_id"]) == ("Pin", image.imageable_id)
    assert claims["exp"] - claims["iat"] == 10
    assert claims["iat"] - 5 <= claims["nbf"] < claims["iat"]


def test_a_delivery_is_recorded_as_an_attempt_and_on_the_image_timeline(
    pinster: PinsterApi,
) -> None:
    notification = deliver(publish())

    [attempt] = notification.delivery_attempts.all()
    assert (attempt.number, attempt.status_code, attempt.result) == (1, 201, "delivered")
    assert 0 <= attempt.latency_ms < 5000
    assert notification.event_id in attempt.response_snippet
    event = notification.image.events.get(kind=EventKind.NOTIFICATION)
    assert event.reason == "PinsterApi was told (HTTP 201)"
    assert event.details["notification"] == notification.event_id


def test_every_attempt_sends_the_same_event_id_with_a_fresh_token(
    pinster: PinsterApi, clock: Clock
) -> None:
    pinster.answer(500, 502)
    notification = publish()
    for _ in range(3):
        deliver(notification)
        clock.now = notification.next_attempt_at or clock.now

    requests = pinster.requests()
    assert [r.status for r in requests] == [500, 502, 201]
    assert {r.event_id for r in requests} == {notification.event_id}
    assert len({r.token for r in requests}) == 3
    assert notification.state == Notification.State.DELIVERED
    assert notification.attempts == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_a_4xx_refusal_is_a_permanent_failure_shown_on_the_timeline(
    pinster: PinsterApi, clock: Clock, status: int
) -> None:
    pinster.answer(status)
    notification = deliver(publish())

    assert notification.state == Notification.State.FAILED
    assert notification.failure_reason.startswith(f"refused by the receiver: HTTP {status}")
    assert notification.next_attempt_at is None
    event = notification.image.events.get(kind=EventKind.NOTIFICATION)
    assert event.reason.startswith(f"notification failed: refused by the receiver: HTTP {status}")

    clock.advance(days=1)
    deliver(notification)
    assert len(pinster.requests()) == 1


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
def test_a_temporary_error_is_retried_later(pinster: PinsterApi, clock: Clock, status: int) -> None:
    pinster.answer(status)
    notification = deliver(publish())

    assert notification.state == Notification.State.PENDING
    assert notification.failure_reason.startswith(f"HTTP {status}")
    assert clock.now + timedelta(seconds=30) <= notification.next_attempt_at
    assert notification.next_attempt_at <= clock.now + timedelta(seconds=60)
    assert not notification.image.events.filter(kind=EventKind.NOTIFICATION).exists()


def test_a_503_with_retry_after_in_seconds_is_honoured(pinster: PinsterApi, clock: Clock) -> None:
    pinster.answer(Reply(503, retry_after="900"))
    notification = deliver(publish())

    assert notification.next_attempt_at == clock.now + timedelta(seconds=900)


def test_a_429_with_retry_after_as_a_date_is_honoured(pinster: PinsterApi, clock: Clock) -> None:
    in_two_hours = format_datetime(timezone.now() + timedelta(hours=2), usegmt=True)
    pinster.answer(Reply(429, retry_after=in_two_hours))
    notification = deliver(publish())

    wait = notification.next_attempt_at - clock.now
    assert timedelta(hours=2) - timedelta(seconds=5) < wait <= timedelta(hours=2)


@override_settings(NOTIFY_TOTAL_TIMEOUT=0.5)
def test_a_slow_answer_is_a_timeout_and_is_retried(pinster: PinsterApi) -> None:
    pinster.answer(Reply(201, delay=5))
    notification = deliver(publish())

    [attempt] = notification.delivery_attempts.all()
    assert attempt.status_code is None
    assert "Timeout" in attempt.error
    assert attempt.latency_ms < 2000
    assert notification.state == Notification.State.PENDING


def test_a_refused_connection_is_recorded_and_retried(pinster: PinsterApi) -> None:
    pinster.stop()
    notification = deliver(publish())

    [attempt] = notification.delivery_attempts.all()
    assert (attempt.status_code, attempt.result) == (None, "pending")
    assert "ConnectionError" in attempt.error
    assert notification.state == Notification.State.PENDING


def test_a_rejection_carries_the_uploader_the_reason_and_the_labels(pinster: PinsterApi) -> None:
    image = make_image(state=State.REJECTED, decision_reason="explicit nudity")
    labels = [{"name": "Explicit Nudity", "confidence": 99.2, "parent": ""}]
    image.events.create(
        kind=EventKind.TRANSITION, actor="system:moderate_image", details={"labels": labels}
    )
    notification = deliver(notify(Notification.Kind.REJECTED, image))

    [received] = pinster.requests()
    assert received.path == REJECTIONS_PATH
    assert received.errors == []
    assert received.body["data"] | {"decided_at": None} == {
        "event": "image.rejected",
        "event_id": notification.event_id,
        "imageable_type": "Pin",
        "imageable_id": image.imageable_id,
        "user_id": image.user_id,
        "image_id": str(image.pk),
        "base_file_name": image.md5,
        "reason": "explicit nudity",
        "labels": labels,
        "decided_at": None,
    }
    assert received.event_id == notification.event_id
    assert notification.state == Notification.State.DELIVERED


def test_a_takedown_through_the_model_method_tells_the_rejection_receiver(
    pinster: PinsterApi, django_capture_on_commit_callbacks: Any
) -> None:
    moderator = User.objects.create_user("mod")
    image = make_image(state=State.PUBLISHED)
    with django_capture_on_commit_callbacks():
        assert image.take_down(by=moderator, reason="reported: not the owner's photo")
    notification = deliver(Notification.objects.get(image=image))

    [received] = pinster.requests()
    assert received.body["data"]["event"] == "image.taken_down"
    assert received.body["data"]["reason"] == "reported: not the owner's photo"
    assert notification.kind == Notification.Kind.TAKEN_DOWN
    assert notification.state == Notification.State.DELIVERED


@override_settings(PRIVATE_KEYS=["-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----"])
def test_a_key_that_cannot_sign_is_an_attempt_error_that_follows_the_schedule(
    pinster: PinsterApi,
) -> None:
    notification = deliver(publish())

    [attempt] = notification.delivery_attempts.all()
    assert attempt.error == "cannot sign the token: ValueError"
    assert "broken" not in attempt.error
    assert notification.state == Notification.State.PENDING
    assert pinster.requests() == []
