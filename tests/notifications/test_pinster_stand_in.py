"""The loopback PinsterApi checks requests as strictly as the real one, or the delivery tests
would prove nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from django.conf import settings

from infra.keys import generate_key_pair
from notifications import signing
from tests.pinster import IMAGES_PATH, PinsterApi, Reply

IMAGEABLE = {"imageable_type": "Pin", "imageable_id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}


def body(**changes: Any) -> dict[str, Any]:
    data = {
        **IMAGEABLE,
        "base_file_name": "0123456789abcdef0123456789abcdef",
        "storage_location_uri": "https://cdn.test/0123456789abcdef0123456789abcdef",
        "thumbnailable": True,
        "name": "",
        "description": "",
        "featured": None,
    }
    return {"data": data | changes}


def token(
    pinster: PinsterApi, key: str | None = None, algorithm: str = "RS256", **claims: Any
) -> str:
    """A service token; `exp_in`/`nbf_in` set those claims relative to now, in seconds."""
    now = int(time.time())
    for name in ("exp", "nbf"):
        if f"{name}_in" in claims:
            claims[name] = now + claims.pop(f"{name}_in")
    payload = {
        "iss": settings.IMAGE_SERVICE_URL,
        "aud": pinster.url,
        "nbf": now - 1,
        "exp": now + 10,
        **IMAGEABLE,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key or settings.PRIVATE_KEYS[0], algorithm=algorithm)


def post(pinster: PinsterApi, bearer: str, payload: Any = None) -> requests.Response:
    return requests.post(
        pinster.url + IMAGES_PATH,
        json=body() if payload is None else payload,
        headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=5,
    )


@pytest.fixture
def pinster() -> Iterator[PinsterApi]:
    with PinsterApi() as server:
        yield server


def test_it_creates_the_image_for_a_request_signed_with_our_key(pinster: PinsterApi) -> None:
    response = post(pinster, token(pinster))

    assert response.status_code == 201
    [received] = pinster.requests()
    assert received.claims["imageable_id"] == IMAGEABLE["imageable_id"]
    assert pinster.delivered_event_ids() == [received.event_id]


def test_it_accepts_the_token_our_signing_module_makes(pinster: PinsterApi, settings: Any) -> None:
    settings.PINSTER_API_URL = pinster.url
    assert post(pinster, signing.service_token(**IMAGEABLE)).status_code == 201


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"key": generate_key_pair()[0]}, "signed with another key"),
        ({"key": "a-shared-secret-of-some-length-000", "algorithm": "HS256"}, "not RS256"),
        ({"aud": "http://someone-else.test"}, "another audience"),
        ({"iss": "http://impostor.test"}, "another issuer"),
        ({"exp_in": -30}, "expired beyond the leeway"),
        ({"nbf_in": 60}, "not valid yet"),
        ({"exp": None}, "no expiry"),
        ({"imageable_type": None}, "no imageable_type"),
        ({"imageable_id": None}, "no imageable_id"),
    ],
)
def test_it_refuses_a_token(pinster: PinsterApi, claims: dict[str, Any], why: str) -> None:
    response = post(pinster, token(pinster, **claims))

    assert response.status_code == 401, why
    assert pinster.delivered_event_ids() == []


def test_it_accepts_a_token_expired_within_the_ten_second_leeway(pinster: PinsterApi) -> None:
    assert post(pinster, token(pinster, exp_in=-5)).status_code == 201


@pytest.mark.parametrize(
    "payload",
    [
        body(storage_location_uri="https://cdn.test/some-other-file"),
        body(imageable_id="another-pin"),
        {"data": {k: v for k, v in body()["data"].items() if k != "thumbnailable"}},
        {"not": "json api"},
    ],
)
def test_it_answers_422_to_a_body_pinster_would_not_accept(
    pinster: PinsterApi, payload: dict[str, Any]
) -> None:
    assert post(pinster, token(pinster), payload).status_code == 422


def test_it_answers_as_commanded_then_201(pinster: PinsterApi) -> None:
    pinster.answer(Reply(503, retry_after="120"), 500)

    first, second, third = (post(pinster, token(pinster)) for _ in range(3))

    assert (first.status_code, first.headers["Retry-After"]) == (503, "120")
    assert (second.status_code, third.status_code) == (500, 201)


def test_it_refuses_connections_once_stopped_and_comes_back_on_the_same_port(
    pinster: PinsterApi,
) -> None:
    url = pinster.url
    pinster.stop()
    with pytest.raises(requests.ConnectionError):
        post(pinster, token(pinster))

    pinster.start()

    assert pinster.url == url
    assert post(pinster, token(pinster)).status_code == 201
