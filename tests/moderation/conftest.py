from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from moderation import banks, blocklist
from moderation.backends import LocalModelBackend, TestBackend, load_backend
from uploads.images import inspect_image
from uploads.models import Image, State
from uploads.services import store_original


@pytest.fixture(autouse=True)
def fresh_moderation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Scripted verdicts, the in-process blocklist and bank indexes and remembered hashes
    start empty."""
    TestBackend.reset()
    load_backend.cache_clear()
    monkeypatch.setattr(blocklist, "index", blocklist.HashIndex())
    monkeypatch.setattr(banks, "index", banks.BankIndex())
    monkeypatch.setattr(blocklist, "_recent_hashes", {})
    yield
    TestBackend.reset()
    load_backend.cache_clear()


@pytest.fixture
def make_image(db: Any) -> Callable[..., Image]:
    """Store `data` as a private original and create its row (state MODERATING by default,
    as the actor leaves it before calling moderate())."""

    def make(data: bytes, *, state: State = State.MODERATING, **fields: Any) -> Image:
        info = inspect_image(data, declared=None)
        sha256 = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        store_original(md5, sha256, data, info.content_type)
        values = {
            "user_id": "u1",
            "imageable_type": "Pin",
            "imageable_id": fields.pop("imageable_id", sha256[:12]),
            "md5": md5,
            "sha256": sha256,
            "format": info.format,
            "content_type": info.content_type,
            "width": info.width,
            "height": info.height,
            "byte_size": len(data),
            "frame_count": info.frame_count,
            "state": state,
            **fields,
        }
        return Image.objects.create(**values)

    return make


@pytest.fixture(scope="session")
def local_model() -> LocalModelBackend:
    """The bundled open_nsfw model, loaded once for the whole run."""
    backend = LocalModelBackend()
    backend.classifier  # load it now, not inside a timed test
    return backend
