"""The per-uploader rate limit: a pin's burst of images passes, a flood gets 429."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.photos import flat
from tests.uploads.conftest import data_url

pytestmark = pytest.mark.django_db


def distinct_jpegs(count: int) -> list[bytes]:
    return [
        flat((index * 12 % 256, 255 - index * 7 % 256, 128), (32, 32)) for index in range(count)
    ]


def test_a_burst_of_twenty_uploads_from_one_user_all_pass(post):
    statuses = [
        post({"data": {"image": data_url(jpeg)}}).status_code for jpeg in distinct_jpegs(20)
    ]
    assert statuses == [202] * 20


@override_settings(UPLOAD_RATE="3/min")
def test_uploads_past_the_rate_get_a_429_with_retry_after(post, api, make_token):
    jpegs = distinct_jpegs(4)
    statuses = [post({"data": {"image": data_url(j)}}).status_code for j in jpegs[:3]]
    response = post({"data": {"image": data_url(jpegs[3])}})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token()}")
    other_user = post({"data": {"image": data_url(jpegs[3])}})

    assert statuses == [202, 202, 202]
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert other_user.status_code == 202
