from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import jwt
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from infra.keys import upload_token_claims
from tests.photos import photo

# Fixtures that start or reach a server outside the test process. A test using one is marked
# `services` here, so the fast lane (`-m "not services and not slow and not browser"`) leaves it
# out without each file having to remember the marker.
SERVICE_FIXTURES = frozenset({"topology", "stack"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pinster_private_key() -> str:
    return (Path(settings.VAR_DIR) / "keys" / "pinster_private.pem").read_text()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache: every test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_moderation_scripts() -> Iterator[None]:
    """TestBackend's scripted verdicts are process-wide: no test inherits another's."""
    from moderation.backends import TestBackend

    TestBackend.reset()
    yield
    TestBackend.reset()


@pytest.fixture
def make_token() -> Callable[..., str]:
    """Sign an upload token the way PinsterApi does (RS256, its claims); override any claim."""

    def make(
        key: str | None = None, algorithm: str = "RS256", headers: Any = None, **claims: Any
    ) -> str:
        payload = upload_token_claims(
            issuer=settings.PINSTER_API_URL, audience=settings.IMAGE_SERVICE_URL, **claims
        )
        return jwt.encode(
            payload, key or pinster_private_key(), algorithm=algorithm, headers=headers
        )

    return make


@pytest.fixture
def uploader_token(make_token: Callable[..., str]) -> str:
    return make_token(
        user_id="8b0d3c1e-5a3f-4f7e-9d1a-2c3b4d5e6f70",
        imageable_id="3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    )


@pytest.fixture
def api(uploader_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {uploader_token}")
    return client


@pytest.fixture
def jpeg() -> bytes:
    return photo(640, 480)


@pytest.fixture
def broker() -> Iterator[dramatiq.Broker]:
    """The stub broker, emptied before and after the test."""
    stub = dramatiq.get_broker()
    stub.flush_all()
    yield stub
    stub.flush_all()


def queued_messages(stub: Any) -> int:
    return sum(queue.qsize() for queue in stub.queues.values())


@pytest.fixture
def stub_worker(broker: Any) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def moderator(db: Any) -> User:
    from django.core.management import call_command

    call_command("setup_roles", verbosity=0)
    user = User.objects.create_user("mod", password="mod-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


@pytest.fixture
def auditor(db: Any) -> User:
    from django.core.management import call_command

    call_command("setup_roles", verbosity=0)
    user = User.objects.create_user("audit", password="audit-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Auditors"))
    return user
