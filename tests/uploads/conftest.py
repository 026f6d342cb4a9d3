from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages

from tests.conftest import queued_messages
from uploads.models import Image


def data_url(data: bytes, content_type: str = "image/jpeg") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def use_local_storage(settings: Any, root: Path) -> None:
    """Private and public storage as local folders under `root` (public served at /media/)."""
    local = "django.core.files.storage.FileSystemStorage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": local,
            "OPTIONS": {"location": str(root / "private"), "allow_overwrite": True},
        },
        "public": {
            "BACKEND": local,
            "OPTIONS": {
                "location": str(root / "public"),
                "base_url": "http://x.test/media/",
                "allow_overwrite": True,
            },
        },
    }


def stored_keys() -> list[str]:
    """Every object in private and public storage, whichever backend is configured."""
    keys: list[str] = []
    for alias in ("default", "public"):
        storage = storages[alias]
        bucket = getattr(storage, "bucket", None)
        if bucket is not None:
            prefix = (storage.location + "/") if storage.location else ""
            keys += [o.key for o in bucket.objects.filter(Prefix=prefix)]
        else:
            try:
                keys += storage.listdir("")[1]
            except FileNotFoundError:
                pass
    return sorted(set(keys))


@pytest.fixture(autouse=True)
def empty_storage() -> None:
    for alias in ("default", "public"):
        storage = storages[alias]
        bucket = getattr(storage, "bucket", None)
        if bucket is not None:
            prefix = (storage.location + "/") if storage.location else ""
            bucket.objects.filter(Prefix=prefix).delete()
        else:
            try:
                for name in storage.listdir("")[1]:
                    storage.delete(name)
            except FileNotFoundError:
                pass


@pytest.fixture
def post(api: Any, django_capture_on_commit_callbacks: Any, broker: Any) -> Callable[..., Any]:
    """POST an upload as the frontend does and run the on-commit callbacks (enqueues)."""

    def send(body: Any = None, *, path: str = "/", fmt: str = "json", **extra: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            if fmt == "raw":
                return api.generic("POST", path, body, **extra)
            return api.post(path, body, format=fmt, **extra)

    return send


@pytest.fixture
def assert_nothing_left(broker: Any) -> Callable[[], None]:
    def check() -> None:
        assert Image.objects.count() == 0
        assert stored_keys() == []
        assert queued_messages(broker) == 0

    return check
