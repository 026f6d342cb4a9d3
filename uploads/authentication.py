"""Upload tokens: RS256 JWTs issued by PinsterApi, verified statelessly (no user table lookup).

Checks signature (RS256 only, against any of API_PUBLIC_KEY's keys during a rotation), `aud`
(our URL), `iss` (PinsterApi's URL), `exp` and `nbf` with JWT_LEEWAY_SECONDS of leeway, a
lifetime (`exp` minus `nbf`, else `iat`, else now) of at most MAX_TOKEN_LIFETIME_SECONDS, and the
claims PinsterApi always puts in: `user_id`, `imageable_type`, `imageable_id`.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cache
from typing import Any

import jwt
from django.conf import settings
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import (
    InvalidToken,
    TokenBackendError,
    TokenBackendExpiredToken,
    TokenError,
)
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.tokens import Token

REQUIRED_CLAIMS = ("user_id", "imageable_type", "imageable_id")


class RotatingKeyTokenBackend(TokenBackend):
    """simplejwt's backend, accepting a signature by any of several keys (during a rotation)."""

    def __init__(self, keys: tuple[str, ...], max_lifetime: int, **kwargs: Any) -> None:
        super().__init__(verifying_key=keys[0], **kwargs)
        self.keys = [self._prepare_key(key) for key in keys]
        self.max_lifetime = max_lifetime

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        payload = self._verified_payload(token)
        if lifetime(payload) > self.max_lifetime:
            raise TokenBackendError("Token is invalid: its lifetime is too long")
        return payload

    def _verified_payload(self, token: Any) -> dict[str, Any]:
        for key in self.keys:
            try:
                return jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.get_leeway(),
                    options={"require": ["exp", "aud", "iss"]},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError as exc:
                raise TokenBackendExpiredToken("Token is expired") from exc
            except jwt.InvalidTokenError as exc:
                raise TokenBackendError(f"Token is invalid: {exc}") from exc
            except (OverflowError, TypeError, ValueError) as exc:  # e.g. "exp": Infinity
                raise TokenBackendError("Token is invalid: a time claim is out of range") from exc
        raise TokenBackendError("Token is invalid: signature verification failed")


def lifetime(payload: dict[str, Any]) -> float:
    """Seconds from the token's start (`nbf`, else `iat`, else now) to its `exp`. PyJWT has
    checked that these are whole numbers; `exp` is required."""
    start = payload.get("nbf", payload.get("iat", time.time()))
    return float(payload["exp"]) - float(start)


@cache
def token_backend(
    keys: tuple[str, ...], audience: str, issuer: str, leeway: int, max_lifetime: int
) -> TokenBackend:
    return RotatingKeyTokenBackend(
        keys,
        max_lifetime,
        algorithm="RS256",
        audience=audience,
        issuer=issuer,
        leeway=leeway,
    )


class UploadToken(Token):
    token_type = "upload"
    lifetime = timedelta(minutes=10)

    def get_token_backend(self) -> TokenBackend:
        return token_backend(
            tuple(settings.API_PUBLIC_KEYS),
            settings.IMAGE_SERVICE_URL,
            settings.PINSTER_API_URL,
            settings.JWT_LEEWAY_SECONDS,
            settings.MAX_TOKEN_LIFETIME_SECONDS,
        )

    def verify(self) -> None:
        super().verify()
        for claim in REQUIRED_CLAIMS:
            value = self.payload.get(claim)
            if not isinstance(value, str) or not value or len(value) > 64:
                raise TokenError(f"Token has no valid {claim} claim")


class Uploader(TokenUser):
    """The person uploading, as PinsterApi vouches for them in the token."""

    @property
    def imageable_type(self) -> str:
        return str(self.token["imageable_type"])

    @property
    def imageable_id(self) -> str:
        return str(self.token["imageable_id"])


class PinsterTokenAuthentication(JWTStatelessUserAuthentication):
    www_authenticate_realm = "imageservice"

    def get_raw_token(self, header: bytes) -> bytes | None:
        raw = super().get_raw_token(header)
        if raw is not None and len(raw) > settings.MAX_TOKEN_BYTES:
            raise InvalidToken("Token is too large")
        return raw

    def get_validated_token(self, raw_token: bytes) -> Token:
        try:
            return UploadToken(raw_token)  # type: ignore[arg-type]  # simplejwt takes bytes
        except (TokenError, TokenBackendError) as exc:
            raise InvalidToken(str(exc.args[0]) if exc.args else "Token is invalid") from None
