"""Upload tokens: PinsterApi's RS256 JWTs, and every way to forge or misuse one."""

from __future__ import annotations

import base64
import json
import time
from functools import cache

import jwt
import pytest
from django.conf import settings

from infra.keys import generate_key_pair
from tests.conftest import pinster_private_key
from tests.uploads.conftest import data_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def send(post, api, jpeg):
    def upload_with(token: str | None, header: str | None = None):
        if header is not None:
            api.credentials(HTTP_AUTHORIZATION=header)
        elif token is None:
            api.credentials()
        else:
            api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return post({"data": {"image": data_url(jpeg)}})

    return upload_with


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_no_authorization_header_is_a_401(send, assert_nothing_left):
    response = send(None)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_left()


def test_a_non_bearer_authorization_header_is_a_401(send):
    assert send(None, header="Basic dXNlcjpwYXNz").status_code == 401


def test_a_valid_token_is_accepted(send, make_token):
    assert send(make_token()).status_code == 202


def test_a_token_expired_five_seconds_ago_is_accepted_within_the_leeway(send, make_token):
    now = int(time.time())
    assert send(make_token(exp=now - 5, nbf=now - 600)).status_code == 202


def test_a_token_valid_from_five_seconds_ahead_is_accepted_within_the_leeway(send, make_token):
    assert send(make_token(nbf=int(time.time()) + 5)).status_code == 202


@cache
def foreign_key_pair() -> tuple[str, str]:
    return generate_key_pair()


def forged_tokens(make_token):
    now = int(time.time())
    other_private, _ = foreign_key_pair()
    public_pem = settings.API_PUBLIC_KEYS[0]
    claims = {
        "iss": settings.PINSTER_API_URL,
        "aud": settings.IMAGE_SERVICE_URL,
        "exp": now + 600,
        "imageable_type": "Pin",
        "imageable_id": "x",
        "user_id": "u",
    }
    none_alg = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    hs_with_public_key = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    import hashlib
    import hmac

    signature = hmac.new(public_pem.encode(), hs_with_public_key.encode(), hashlib.sha256).digest()
    hs_with_public_key += "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    return {
        "alg none": none_alg,
        "HS256 signed with the public key": hs_with_public_key,
        "a foreign key": make_token(key=other_private),
        "wrong aud": make_token(aud="https://other-service.example"),
        "missing aud": make_token(aud=None),
        "wrong iss": make_token(iss="https://not-pinster.example"),
        "missing iss": make_token(iss=None),
        "expired beyond the leeway": make_token(exp=now - 11, nbf=now - 600),
        "missing exp": make_token(exp=None),
        "not yet valid": make_token(nbf=now + 60),
        "no user_id": make_token(user_id=None),
        "no imageable_type": make_token(imageable_type=None),
        "no imageable_id": make_token(imageable_id=None),
        "numeric imageable_id": make_token(imageable_id=12),
        "garbage": "not.a.jwt",
        "huge header": make_token(headers={"kid": "k" * 10_000}),
        "tampered payload": make_token().rsplit(".", 2)[0] + "." + _b64(claims) + ".AAAA",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 signed with the public key",
        "a foreign key",
        "wrong aud",
        "missing aud",
        "wrong iss",
        "missing iss",
        "expired beyond the leeway",
        "missing exp",
        "not yet valid",
        "no user_id",
        "no imageable_type",
        "no imageable_id",
        "numeric imageable_id",
        "garbage",
        "huge header",
        "tampered payload",
    ],
)
def test_a_token_that_fails_verification_is_a_403(send, make_token, case, assert_nothing_left):
    response = send(forged_tokens(make_token)[case])

    assert response.status_code == 403
    assert response.json()["code"] == "invalid_token"
    assert_nothing_left()


def test_a_token_signed_with_either_key_verifies_during_a_rotation(send, make_token):
    new_private, new_public = foreign_key_pair()
    keys = [new_public, settings.API_PUBLIC_KEYS[0]]
    from django.test import override_settings

    with override_settings(API_PUBLIC_KEYS=keys):
        assert send(make_token()).status_code == 202
        assert send(make_token(key=new_private)).status_code == 202
    assert send(make_token(key=new_private)).status_code == 403


def test_the_upload_token_is_never_echoed_back(send, make_token):
    token = make_token(aud="https://other-service.example")
    response = send(token)
    assert token not in response.content.decode()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_a_token_valid_for_the_longest_lifetime_allowed_is_accepted(send, make_token, settings):
    now = int(time.time())
    lifetime = settings.MAX_TOKEN_LIFETIME_SECONDS
    assert send(make_token(nbf=now - 1, exp=now - 1 + lifetime)).status_code == 202


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("exp ten to the eighteenth", lambda now: {"exp": 10**18}),
        ("a hundred years", lambda now: {"exp": now + 100 * 365 * 86400}),
        ("an hour and a minute from nbf", lambda now: {"nbf": now - 60, "exp": now + 3601}),
        ("two hours from iat", lambda now: {"nbf": None, "iat": now, "exp": now + 7200}),
        ("two hours from now", lambda now: {"nbf": None, "exp": now + 7200}),
    ],
)
def test_a_token_living_longer_than_the_cap_is_a_403(
    send, make_token, case, claims, assert_nothing_left
):
    response = send(make_token(**claims(int(time.time()))))

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "invalid_token"
    assert_nothing_left()


def test_a_signed_token_with_an_infinite_exp_is_a_403(send, assert_nothing_left):
    """JSON has no Infinity, but Python's json module reads it: a signature over it verifies."""
    header = _b64({"alg": "RS256", "typ": "JWT"})
    now = int(time.time())
    claims = {
        "iss": settings.PINSTER_API_URL,
        "aud": settings.IMAGE_SERVICE_URL,
        "nbf": now,
        "imageable_type": "Pin",
        "imageable_id": "x",
        "user_id": "u",
    }
    body = json.dumps(claims)[:-1] + ', "exp": Infinity}'
    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    signing_input = f"{header}.{payload}".encode()
    rs256 = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    signature = rs256.sign(signing_input, rs256.prepare_key(pinster_private_key()))
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    response = send(token)

    assert response.status_code == 403, response.content
    assert_nothing_left()


def test_the_development_token_fits_the_lifetime_cap_and_a_longer_one_is_refused(send):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("sign_upload_token", minutes=60, stdout=out)
    assert send(out.getvalue().strip()).status_code == 202

    with pytest.raises(CommandError, match="MAX_TOKEN_LIFETIME_SECONDS"):
        call_command("sign_upload_token", minutes=61, stdout=StringIO())
