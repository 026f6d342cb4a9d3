from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from notifications.models import Notification
from tests.pinster import PinsterApi
from uploads.models import Image, State


class Clock:
    """Django's clock, moved by the test (django.utils.timezone.now is patched)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(timezone.now())
    monkeypatch.setattr(timezone, "now", fake)
    return fake


@pytest.fixture
def pinster() -> Iterator[PinsterApi]:
    """PinsterApi on loopback, configured as both the API and the rejection receiver."""
    with (
        PinsterApi() as server,
        override_settings(PINSTER_API_URL=server.url, REJECTION_NOTIFY_URL=server.rejections_url),
    ):
        yield server


def make_image(state: str = State.PUBLISHING, **fields: Any) -> Image:
    content = uuid.uuid4().bytes
    values = {
        "user_id": str(uuid.uuid4()),
        "imageable_type": "Pin",
        "imageable_id": str(uuid.uuid4()),
        "name": "Sunset over the bay",
        "description": "Taken from the pier",
        "md5": hashlib.md5(content).hexdigest(),
        "sha256": hashlib.sha256(content).hexdigest(),
        "format": "JPEG",
        "content_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "byte_size": 1234,
        "state": state,
    }
    return Image.objects.create(**(values | fields))


def publish(image: Image | None = None) -> Notification:
    """Publish an image through its real transition, whose hook writes the notification."""
    image = image or make_image()
    assert image.published(renditions=[f"{image.md5}_100x100"])
    return Notification.objects.get(image=image, kind=Notification.Kind.APPROVED)


def notify(kind: str, image: Image | None = None, reason: str = "nudity") -> Notification:
    """A rejection or takedown notification written as a decision's hook would write it."""
    image = image or make_image(state=State.REJECTED, decision_reason=reason)
    with transaction.atomic():
        return Notification.objects.create_for(image, kind)
