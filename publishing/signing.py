"""Signed delivery URLs: `/s/<sig>/<rest>`, `<sig>` the unpadded URL-safe base64 of
HMAC-SHA256(key, `<rest>`) with any key of URL_SIGNING_KEYS (several for rotation)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def sign(message: str, key: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(signature: str, message: str, keys: Sequence[str]) -> bool:
    """True when one of `keys` signed `message`; compares in constant time per key."""
    given = signature.encode("ascii", "replace")
    return any(hmac.compare_digest(given, sign(message, key).encode()) for key in keys)
