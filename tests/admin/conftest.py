"""Images in every state, with real originals in private storage, for the admin's tests."""

from __future__ import annotations

import hashlib
import io
import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connections
from django.test import Client
from django.utils import timezone
from PIL import Image as PILImage

from moderation.models import ModerationResult
from tests.photos import photo
from tests.services import missing_service
from uploads.models import EventKind, Image, ImageEvent, State

TEST_BACKEND = "moderation.backends.TestBackend"
CHROMIUM = Path("/usr/bin/chromium")
SUGGESTIVE = [{"name": "Suggestive", "parent": "", "confidence": 87.5}]
_numbers = itertools.count(1)


def store_original(data: bytes) -> str:
    md5 = hashlib.md5(data).hexdigest()
    storage = storages["default"]
    if not storage.exists(md5):
        storage.save(md5, ContentFile(data))
    return md5


def create_image(
    *,
    state: str = State.IN_REVIEW,
    data: bytes | None = None,
    content_type: str = "image/jpeg",
    fmt: str = "JPEG",
    waited: timedelta = timedelta(minutes=5),
    user_id: str | None = None,
    labels: list[dict[str, Any]] | None = None,
    backend: str = TEST_BACKEND,
    with_result: bool = True,
    **fields: Any,
) -> Image:
    """An image as the pipeline leaves it: the original stored (when `data` is given), its
    moderation result and the events of its way to `state`."""
    n = next(_numbers)
    width, height = 640, 480
    if data is not None:
        md5 = store_original(data)
        sha256 = hashlib.sha256(data).hexdigest()
        with PILImage.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    else:
        md5 = hashlib.md5(str(n).encode()).hexdigest()
        sha256 = hashlib.sha256(str(n).encode()).hexdigest()
    since = timezone.now() - waited
    image = Image.objects.create(
        user_id=user_id or f"user-{n}",
        imageable_type="Pin",
        imageable_id=str(uuid.uuid4()),
        md5=md5,
        sha256=sha256,
        format=fmt,
        content_type=content_type,
        width=width,
        height=height,
        byte_size=len(data) if data else 1000,
        state=state,
        state_changed_at=since,
        created_at=since - timedelta(seconds=30),
        **fields,
    )
    ImageEvent.objects.create(
        image=image, at=image.created_at, kind=EventKind.UPLOADED, actor=f"uploader:{image.user_id}"
    )
    ImageEvent.objects.create(
        image=image,
        at=since,
        kind=EventKind.TRANSITION,
        from_state=State.MODERATING,
        to_state=state,
        actor="system:moderate_image",
        reason="flagged for review",
    )
    if with_result:
        ModerationResult.objects.create(
            image=image,
            created_at=since,
            backend=backend,
            model_version="test-1",
            labels=SUGGESTIVE if labels is None else labels,
            outcome=State.IN_REVIEW if state == State.IN_REVIEW else state,
            reason="flagged for review",
        )
    return image


@pytest.fixture
def make_image(db: Any) -> Callable[..., Image]:
    return create_image


@pytest.fixture
def flagged(make_image: Callable[..., Image]) -> Image:
    """A photo waiting for a moderator, stored for real."""
    return make_image(data=photo(640, 480))


@pytest.fixture
def staff_without_role(db: Any) -> User:
    return User.objects.create_user("clerk", password="clerk-password-1", is_staff=True)


@pytest.fixture
def member(db: Any) -> User:
    return User.objects.create_user("member", password="member-password-1")


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def bulk_images(count: int, *, state: str = State.IN_REVIEW) -> list[Image]:
    """`count` flagged images with a result (some of them blocklist hits) and two events each,
    in a few queries (no originals stored: list pages never read them)."""
    from moderation.models import BlockedImage

    now = timezone.now()
    source = create_image(state=State.REJECTED)
    blocked = BlockedImage.objects.create(sha256=source.sha256, source_image=source, reason="x")
    start = next(_numbers)
    for _ in range(count):
        next(_numbers)
    images = Image.objects.bulk_create(
        Image(
            user_id=f"user-{n % 7}",
            imageable_type="Pin",
            imageable_id=str(uuid.uuid4()),
            md5=hashlib.md5(f"bulk{n}".encode()).hexdigest(),
            sha256=hashlib.sha256(f"bulk{n}".encode()).hexdigest(),
            format="JPEG",
            content_type="image/jpeg",
            width=640,
            height=480,
            byte_size=1000,
            state=state,
            state_changed_at=now - timedelta(minutes=n),
            created_at=now - timedelta(minutes=n, seconds=30),
        )
        for n in range(start, start + count)
    )
    ModerationResult.objects.bulk_create(
        ModerationResult(
            image=image,
            backend=TEST_BACKEND,
            labels=SUGGESTIVE,
            outcome=State.IN_REVIEW,
            blocked_image=blocked if i % 3 == 0 else None,
            blocklist_distance=4 if i % 3 == 0 else None,
        )
        for i, image in enumerate(images)
    )
    ImageEvent.objects.bulk_create(
        ImageEvent(image=image, kind=kind, actor="system:moderate_image", to_state=state)
        for image in images
        for kind in (EventKind.UPLOADED, EventKind.TRANSITION)
    )
    return images


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Any:
    if not CHROMIUM.exists():
        missing_service(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("the playwright package is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # meanwhile are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        yield browser
        browser.close()
        # Connections opened while Playwright's loop ran belong to that context: close them,
        # or the test database cannot be dropped at the end of the session.
        connections.close_all()
