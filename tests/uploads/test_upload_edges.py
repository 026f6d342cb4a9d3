"""Inputs that once answered 500, a redirect or an unreadable error: each gets a JSON answer a
browser can read, and a refused one leaves nothing behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.uploads.conftest import data_url
from uploads.models import Image

pytestmark = pytest.mark.django_db

FRONTEND = "http://localhost:3000"  # in CORS_ALLOWED_ORIGINS by default


def test_a_featured_offset_beyond_postgresqls_range_is_stored_in_utc(post, jpeg):
    response = post({"data": {"image": data_url(jpeg), "featured": "2020-01-01T20:00:00+20:00"}})

    assert response.status_code == 202, response.content
    featured = Image.objects.get(pk=response.json()["id"]).featured
    assert featured == datetime(2020, 1, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "featured", ["9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+10:00", "2020-01-01T00:00+24:00"]
)
def test_a_featured_time_that_does_not_fit_in_utc_is_a_400(
    post, jpeg, featured, assert_nothing_left
):
    response = post({"data": {"image": data_url(jpeg), "featured": featured}})

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_fields"
    assert_nothing_left()


def test_an_upload_to_the_path_without_the_trailing_slash_is_accepted_not_redirected(post, jpeg):
    response = post({"data": {"image": data_url(jpeg)}}, path="/api/v1/images")

    assert response.status_code == 202, response.content
    assert response["Content-Type"] == "application/json"


@override_settings(MAX_REQUEST_BYTES=10_000)
def test_a_413_for_a_body_over_the_limit_carries_the_frontends_cors_headers(
    post, jpeg, assert_nothing_left
):
    body = json.dumps({"data": {"image": data_url(jpeg)}}).encode()

    response = post(body, fmt="raw", content_type="application/json", HTTP_ORIGIN=FRONTEND)

    assert response.status_code == 413
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert "x-request-id" in response["Access-Control-Expose-Headers"].lower()
    assert_nothing_left()


def test_a_411_for_a_chunked_body_carries_the_frontends_cors_headers(post, assert_nothing_left):
    response = post(
        b"",
        fmt="raw",
        content_type="application/json",
        HTTP_ORIGIN=FRONTEND,
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )

    assert response.status_code == 411
    assert response.json()["code"] == "length_required"
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert_nothing_left()


def test_a_401_carries_the_frontends_cors_headers(jpeg):
    response = APIClient().post(
        "/", {"data": {"image": data_url(jpeg)}}, format="json", HTTP_ORIGIN=FRONTEND
    )

    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == FRONTEND


def test_an_origin_not_allowed_gets_no_cors_headers(post, jpeg):
    response = post({"data": {"image": data_url(jpeg)}}, HTTP_ORIGIN="https://evil.example")

    assert "Access-Control-Allow-Origin" not in response


def test_the_same_bytes_from_another_user_of_the_imageable_answer_an_image_they_can_read(
    post, jpeg, make_token, uploader_token
):
    first = post({"data": {"image": data_url(jpeg)}})
    other = APIClient()
    other.credentials(
        HTTP_AUTHORIZATION="Bearer "
        + make_token(user_id="another-user", imageable_id="3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    )

    again = other.post("/", {"data": {"image": data_url(jpeg)}}, format="json")
    status = other.get(again.json()["status_url"].removeprefix("http://imageservice.test"))

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert status.status_code == 200, status.content
    assert status.json()["id"] == first.json()["id"]


def test_an_image_is_not_readable_with_a_token_for_another_imageable(post, jpeg, make_token):
    first = post({"data": {"image": data_url(jpeg)}})
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user_id='stranger')}")

    status = stranger.get(f"/api/v1/images/{first.json()['id']}")

    assert status.status_code == 404
