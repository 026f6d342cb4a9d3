from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from infra.keys import generate_key_pair, load_keys
from notifications.signing import service_token

pytestmark = pytest.mark.django_db

OLD = generate_key_pair()
NEW = generate_key_pair()
STRANGER = generate_key_pair()


def upload_status(token: str, jpeg: bytes) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {"data": {"image": base64.b64encode(jpeg).decode()}}
    return client.post("/api/v1/images/", body, format="json").status_code


def test_tokens_signed_by_the_old_or_the_new_key_both_verify_during_a_rotation(
    make_token: Callable[..., str], jpeg: bytes, broker: Any
) -> None:
    with override_settings(API_PUBLIC_KEYS=[NEW[1], OLD[1]]):
        assert upload_status(make_token(key=OLD[0]), jpeg) == 202
        assert upload_status(make_token(key=NEW[0]), jpeg) == 202
        assert upload_status(make_token(key=STRANGER[0]), jpeg) == 403


def test_once_the_old_key_is_dropped_its_tokens_stop_verifying(
    make_token: Callable[..., str], jpeg: bytes, broker: Any
) -> None:
    with override_settings(API_PUBLIC_KEYS=[NEW[1]]):
        assert upload_status(make_token(key=OLD[0]), jpeg) == 403
        assert upload_status(make_token(key=NEW[0]), jpeg) == 202


def test_our_notifications_are_signed_with_the_first_private_key() -> None:
    with override_settings(PRIVATE_KEYS=[NEW[0], OLD[0]]):
        token = service_token(imageable_type="Pin", imageable_id="p-1")
    options: dict[str, Any] = {
        "algorithms": ["RS256"],
        "audience": settings.PINSTER_API_URL,
        "issuer": settings.IMAGE_SERVICE_URL,
    }
    assert jwt.decode(token, NEW[1], **options)["imageable_id"] == "p-1"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OLD[1], **options)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(f"{NEW[1]}\n{OLD[1]}", id="PEM texts one after the other"),
        pytest.param(
            ",".join(base64.b64encode(pem.encode()).decode() for pem in (NEW[1], OLD[1])),
            id="base64 of each PEM, comma-separated",
        ),
        pytest.param(f"{NEW[1]},{OLD[1]}".replace("\n", "\\n"), id="PEMs with escaped newlines"),
    ],
)
def test_a_key_list_in_the_environment_keeps_its_order(
    raw: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("API_PUBLIC_KEY", raw)
    keys = load_keys("API_PUBLIC_KEY", private=False, dev_dir=tmp_path)
    assert [key.strip() for key in keys] == [NEW[1].strip(), OLD[1].strip()]
