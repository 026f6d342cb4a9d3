"""RSA keys from the environment: PEM text or base64 of the PEM, one or several.

Imported by settings, so it must not import Django models. Without the variable a development
key pair is made under `var/keys/` (and reused), so a fresh checkout runs with no secrets set.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured

PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)
# Development key pairs: PinsterApi's (it signs upload tokens) and ours (we sign notifications).
DEV_KEY_STEMS = {"API_PUBLIC_KEY": "pinster", "PRIVATE_KEY": "service"}


def split_pems(raw: str) -> list[str]:
    """Return the PEM texts in `raw`: PEM blocks, or base64-encoded PEMs separated by commas."""
    raw = raw.strip().replace("\\n", "\n")
    if "-----BEGIN" in raw:
        return PEM_BLOCK.findall(raw)
    pems = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            pems.append(base64.b64decode(part, validate=True).decode("ascii"))
        except (binascii.Error, UnicodeDecodeError):
            return []
    return pems


def _check(name: str, pem: str, *, private: bool) -> None:
    try:
        if private:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        else:
            key = serialization.load_pem_public_key(pem.encode())  # type: ignore[assignment]
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{name} is not a valid PEM {'private' if private else 'public'} key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        raise ImproperlyConfigured(f"{name} must be an RSA key (tokens are RS256)")


def generate_key_pair() -> tuple[str, str]:
    """A new 2048-bit RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def dev_key_pair(dev_dir: Path, stem: str) -> tuple[str, str]:
    """The development key pair `<stem>_private.pem`/`<stem>_public.pem`, made on first use."""
    private_path, public_path = dev_dir / f"{stem}_private.pem", dev_dir / f"{stem}_public.pem"
    if not (private_path.exists() and public_path.exists()):
        dev_dir.mkdir(parents=True, exist_ok=True)
        private, public = generate_key_pair()
        private_path.write_text(private)
        private_path.chmod(0o600)
        public_path.write_text(public)
    return private_path.read_text(), public_path.read_text()


def read_dev_key(dev_dir: Path, name: str, *, private: bool) -> str | None:
    """The development key for setting `name`, if `python -m infra.devsetup` made it."""
    path = dev_dir / f"{DEV_KEY_STEMS[name]}_{'private' if private else 'public'}.pem"
    return path.read_text() if path.exists() else None


def load_keys(name: str, *, private: bool, dev_dir: Path) -> list[str]:
    """The keys of setting `name` (PEM or base64 of PEM, several for rotation); without it, the
    development key in `dev_dir`. Reads only: a missing key is a configuration error."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        dev_key = read_dev_key(dev_dir, name, private=private)
        if dev_key is None:
            raise ImproperlyConfigured(
                f"{name} is not set (for development keys run `python -m infra.devsetup`)"
            )
        return [dev_key]
    pems = split_pems(raw)
    if not pems:
        raise ImproperlyConfigured(f"{name} must be PEM text or base64 of PEM text")
    for pem in pems:
        _check(name, pem, private=private)
    return pems


def upload_token_claims(
    *, issuer: str, audience: str, lifetime: int = 600, **changes: object
) -> dict[str, object]:
    """The claims PinsterApi puts in an upload token (docs/contract.md §1): new ids unless given.
    A change of None removes that claim. For development tokens, tests and benchmarks."""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": issuer,
        "aud": audience,
        "nbf": now - 1,
        "exp": now + lifetime,
        "imageable_type": "Pin",
        "imageable_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}
