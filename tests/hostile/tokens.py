"""Upload tokens for the corpus: PinsterApi's valid ones, and every forgery worth trying."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

from infra.keys import upload_token_claims
from tests.conftest import pinster_private_key


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    """PinsterApi's claims (docs/contract.md §1); a change of None removes the claim."""
    return upload_token_claims(
        issuer=settings.PINSTER_API_URL, audience=settings.IMAGE_SERVICE_URL, **changes
    )


def sign(
    key: Any = None, algorithm: str = "RS256", headers: dict[str, Any] | None = None, **changes: Any
) -> str:
    return jwt.encode(
        claims(**changes), key or pinster_private_key(), algorithm=algorithm, headers=headers
    )


def unsigned(header: dict[str, Any], **changes: Any) -> str:
    """A token assembled by hand: `alg` whatever the header says, no signature."""
    parts = [json.dumps(header).encode(), json.dumps(claims(**changes)).encode()]
    return ".".join(b64url(part) for part in parts) + "."


def hmac_with_public_key(algorithm: str = "HS256") -> str:
    """The RS/HS confusion: an HMAC keyed with the public key a naive verifier would use."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signing_input = unsigned({"alg": algorithm, "typ": "JWT"})[:-1]
    secret = settings.API_PUBLIC_KEYS[0].encode()
    signature = hmac.new(secret, signing_input.encode(), digest[algorithm]).digest()
    return f"{signing_input}.{b64url(signature)}"


@cache
def foreign_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def foreign_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def with_embedded_jwk() -> str:
    """Signed by an attacker's key that the header itself offers as the key to verify with."""
    key = foreign_rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return sign(pem(key), headers={"jwk": jwk})


def with_resigned_payload() -> str:
    """A genuine token's header and signature around a payload with another user_id."""
    header, _, signature = sign().split(".")
    payload = b64url(json.dumps(claims(user_id="someone-else")).encode())
    return f"{header}.{payload}.{signature}"
