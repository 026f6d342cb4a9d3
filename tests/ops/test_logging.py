from __future__ import annotations

import base64
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from infra.logging import JsonFormatter, RequestIdFilter, TextFormatter
from tests.conftest import pinster_private_key
from uploads.models import Image, State

pytestmark = pytest.mark.django_db(transaction=True)

DB_URL = "postgres://imageservice:db-password-123@db.internal:5432/images"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and above, formatted as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def secrets_in(text: str, *secrets: str) -> list[str]:
    """Which of the secrets (or any 40-character piece of one) appear in the text."""
    found = []
    for secret in secrets:
        pieces = [secret[i : i + 40] for i in range(0, max(1, len(secret) - 40), 20)]
        if any(piece in text for piece in pieces):
            found.append(secret[:20])
    return found


def key_material() -> list[str]:
    pems = [pinster_private_key(), *settings.PRIVATE_KEYS]
    return [line for pem in pems for line in pem.splitlines() if "-----" not in line]


def test_an_upload_and_its_tasks_log_no_token_key_or_image_bytes(
    api: APIClient,
    uploader_token: str,
    jpeg: bytes,
    broker: Any,
    stub_worker: Any,
    log_lines: io.StringIO,
) -> None:
    encoded = base64.b64encode(jpeg).decode()
    response = api.post(
        "/api/v1/images/",
        {"data": {"image": f"data:image/jpeg;base64,{encoded}", "name": "A quiet lake"}},
        format="json",
    )
    assert response.status_code == 202
    # the same body with a bad token and a broken body, so the error paths log too
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {uploader_token[:-4]}AAAA")
    assert (
        api.post("/api/v1/images/", {"data": {"image": encoded}}, format="json").status_code == 403
    )
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {uploader_token}")
    assert (
        api.post(
            "/api/v1/images/", {"data": {"image": encoded[:-3] + "!!"}}, format="json"
        ).status_code
        == 400
    )
    for queue in ("moderation", "thumbnails", "notifications"):
        broker.join(queue, timeout=60_000)
    stub_worker.join()
    image = Image.objects.get(pk=response.json()["id"])
    assert image.state == State.PUBLISHED

    text = log_lines.getvalue()
    lines = text.splitlines()
    assert lines, "the pipeline logged nothing: this test would prove nothing"
    entries = [json.loads(line) for line in lines]  # one JSON object per line
    request_id = response["X-Request-ID"]
    task_lines = [e for e in entries if e["logger"] == "infra.metrics"]
    assert {e["actor"] for e in task_lines} >= {"moderate_image", "make_thumbnails"}
    assert {e["request_id"] for e in task_lines if e["actor"] != "notify_pinster"} == {request_id}

    assert secrets_in(text, uploader_token, encoded, *key_material()) == []
    assert "eyJ" not in text
    assert "BEGIN" not in text
    assert "\\u00ff\\u00d8" not in text and "\\xff\\xd8" not in text


def test_each_kind_of_secret_is_redacted_wherever_it_is_logged(
    uploader_token: str, jpeg: bytes
) -> None:
    encoded = base64.b64encode(jpeg).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, 2000, 76))
    pem = pinster_private_key()
    secrets = [uploader_token, encoded, pem, "db-password-123", "hunter2", "basic-creds"]
    records = []

    def record(msg: str, args: Any = (), **extra: Any) -> logging.LogRecord:
        rec = logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args, None)
        rec.__dict__.update(extra)
        records.append(rec)
        return rec

    record("token %s", (uploader_token,))
    record("Authorization: Bearer %s", (uploader_token,))
    record("Authorization: Basic %s", ("basic-creds",))
    record("key %s", (pem,))
    record("body %s", ({"data": {"image": encoded}},))
    record("wrapped body\n%s", (wrapped,))
    record("bytes %r", (jpeg,))
    record("raw %s", (jpeg,))
    record("connecting to %s", (DB_URL,))
    record("settings %s", ({"password": "hunter2", "AWS_SECRET_ACCESS_KEY": "hunter2"},))
    record(
        "extras",
        (),
        details={"token": "hunter2", "body": jpeg, "nested": [{"password": "hunter2"}]},
    )
    record("extra key", (), api_key="hunter2", private_key=pem)
    try:
        raise ValueError(f"could not decode {uploader_token} with {pem}")
    except ValueError:
        records.append(
            logging.LogRecord("test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        )

    json_text = "\n".join(JsonFormatter().format(r) for r in records)
    assert len(json_text.splitlines()) == len(records)
    assert all(json.loads(line) for line in json_text.splitlines())
    text_text = "\n".join(TextFormatter("%(message)s").format(r) for r in records)
    for formatted in (json_text, text_text):
        assert secrets_in(formatted, *secrets) == []
        assert (
            secrets_in(formatted, *(line for line in pem.splitlines() if "---" not in line)) == []
        )
        assert "hunter2" not in formatted


def test_ordinary_messages_are_left_alone() -> None:
    message = "image 3f2504e0-4f89-11d3-9a0c-0305e82c3301 moved from received to moderating (md5 9e107d9d372bb6826bd81d3542a419d6)"
    rec = logging.LogRecord("test", logging.INFO, __file__, 1, message, (), None)
    assert json.loads(JsonFormatter().format(rec))["message"] == message


def test_both_configured_log_formats_use_the_redacting_formatters() -> None:
    formatters = settings.LOGGING["formatters"]
    assert formatters["json"]["()"] == "infra.logging.JsonFormatter"
    assert formatters["text"]["()"] == "infra.logging.TextFormatter"
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["request_id"]
