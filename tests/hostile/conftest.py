from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

# Debian's Chromium driven by Playwright (the browser test of readable errors).
from tests.admin.conftest import chromium  # noqa: F401
from tests.hostile import tokens
from tests.hostile.corpus import Case

# The upload tests' `post`, `assert_nothing_left` (no row, no stored object, no queued job) and
# autouse `empty_storage`; moderation's autouse reset of scripted verdicts and the blocklist.
from tests.moderation.conftest import fresh_moderation  # noqa: F401
from tests.uploads.conftest import assert_nothing_left, empty_storage, post  # noqa: F401


@pytest.fixture
def send(django_capture_on_commit_callbacks: Any, broker: Any) -> Callable[[Case], Any]:
    """Send a corpus case as a client would, running the enqueues that follow a commit."""

    def send_case(case: Case) -> Any:
        upload = case.build()
        client = APIClient()
        headers = {}
        if upload.authorization == "valid":
            headers["HTTP_AUTHORIZATION"] = f"Bearer {tokens.sign()}"
        elif upload.authorization is not None:
            headers["HTTP_AUTHORIZATION"] = upload.authorization
        with override_settings(**case.settings), django_capture_on_commit_callbacks(execute=True):
            if upload.multipart is not None:
                return client.post("/", _multipart(upload.multipart), format="multipart", **headers)
            return client.generic(
                "POST", "/", upload.body, content_type=upload.content_type, **headers
            )

    return send_case


def _multipart(fields: dict[str, Any]) -> dict[str, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {
        name: SimpleUploadedFile(*value) if isinstance(value, tuple) else value
        for name, value in fields.items()
    }
