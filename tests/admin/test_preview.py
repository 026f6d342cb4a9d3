"""Previews of private originals: only for staff who may see images, with headers that keep
them out of shared caches and stop browsers from guessing another type."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage

from tests.admin.conftest import client_for
from tests.photos import animated, heic, photo
from uploads.models import Image

pytestmark = pytest.mark.django_db


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_private(response: Any) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize("who", ["moderator", "auditor"])
def test_staff_get_the_original_bytes_with_its_type(
    who: str, request: pytest.FixtureRequest, make_image: Any
) -> None:
    data = photo(640, 480)
    image = make_image(data=data)
    response = client_for(request.getfixturevalue(who)).get(
        f"/admin/uploads/image/{image.pk}/preview/"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert body(response) == data
    assert_private(response)
    assert response["Content-Disposition"].startswith("inline")


def test_an_animated_gif_is_served_as_uploaded(moderator: User, make_image: Any) -> None:
    data = animated("GIF")
    image = make_image(data=data, content_type="image/gif", fmt="GIF")
    response = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/preview/")
    assert response["Content-Type"] == "image/gif"
    assert body(response) == data


def test_a_heic_original_is_previewed_as_an_upright_jpeg(moderator: User, make_image: Any) -> None:
    image = make_image(data=heic(600, 400), content_type="image/heic", fmt="HEIF")
    response = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/preview/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert_private(response)
    with PILImage.open(io.BytesIO(body(response))) as shown:
        assert (shown.format, shown.size) == ("JPEG", (600, 400))


def test_the_list_thumbnail_is_a_small_jpeg(moderator: User, make_image: Any) -> None:
    image = make_image(data=photo(1200, 800))
    response = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/preview/?size=thumb")
    assert response["Content-Type"] == "image/jpeg"
    assert_private(response)
    with PILImage.open(io.BytesIO(body(response))) as shown:
        assert shown.size == (160, 107)


def test_a_missing_original_is_a_404(moderator: User, make_image: Any) -> None:
    image: Image = make_image()  # no original stored
    response = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/preview/")
    assert response.status_code == 404


def test_the_preview_is_refused_to_staff_without_the_view_permission(
    staff_without_role: User, member: User, make_image: Any
) -> None:
    image = make_image(data=photo(320, 240))
    url = f"/admin/uploads/image/{image.pk}/preview/"
    assert client_for(staff_without_role).get(url).status_code == 403
    assert client_for(member).get(url)["Location"].startswith("/admin/login/")
    assert client_for(None).get(url)["Location"].startswith("/admin/login/")
