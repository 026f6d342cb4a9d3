"""The development commands: a signed upload token the service accepts, and key pairs."""

from __future__ import annotations

from io import StringIO

import jwt
import pytest
from django.conf import settings
from django.core.management import call_command

from tests.uploads.conftest import data_url

pytestmark = pytest.mark.django_db


def test_a_development_token_is_accepted_for_an_upload(api, post, jpeg):
    out = StringIO()
    call_command("sign_upload_token", stdout=out)
    token = out.getvalue().strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = post({"data": {"image": data_url(jpeg)}})

    assert response.status_code == 202
    assert {"user_id", "imageable_type", "imageable_id", "iss", "aud", "exp", "nbf"} <= set(claims)
    assert claims["aud"] == settings.IMAGE_SERVICE_URL


def test_a_development_token_carries_the_ids_it_is_given():
    out = StringIO()
    call_command("sign_upload_token", user_id="u-1", imageable_id="pin-9", stdout=out)
    claims = jwt.decode(out.getvalue().strip(), options={"verify_signature": False})
    assert (claims["user_id"], claims["imageable_id"], claims["imageable_type"]) == (
        "u-1",
        "pin-9",
        "Pin",
    )


def test_generate_keypair_prints_pem_and_base64_forms():
    out = StringIO()
    call_command("generate_keypair", stdout=out)
    text = out.getvalue()
    assert "BEGIN PUBLIC KEY" in text
    assert "BEGIN PRIVATE KEY" in text
