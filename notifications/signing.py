"""Service tokens: how PinsterApi knows a notification comes from us (docs/contract.md §4)."""

from __future__ import annotations

import time
import uuid
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from django.conf import settings

TOKEN_LIFETIME_SECONDS = 10


@cache
def _private_key(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)


def service_token(*, imageable_type: str, imageable_id: str) -> str:
    """A fresh RS256 token signed with our first private key, made for one attempt. Real time,
    not Django's clock: the receiver checks it against its own clock."""
    now = int(time.time())
    claims = {
        "iss": settings.IMAGE_SERVICE_URL,
        "aud": settings.PINSTER_API_URL,
        "iat": now,
        "jti": uuid.uuid4().hex,  # every token is new, even two in the same second
        "nbf": now - 1,
        "exp": now + TOKEN_LIFETIME_SECONDS,
        "imageable_type": imageable_type,
        "imageable_id": imageable_id,
    }
    return jwt.encode(claims, _private_key(settings.PRIVATE_KEYS[0]), algorithm="RS256")
