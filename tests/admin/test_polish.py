"""The admin speaks for the service in plain words: its titles, renditions as links, short ids
with the full value at hand, and pages with no inline scripts or styles (for a strict CSP)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.admin.conftest import client_for
from uploads.models import Image, State

pytestmark = pytest.mark.django_db


def test_the_header_and_titles_name_the_service(moderator: User) -> None:
    page = client_for(moderator).get("/admin/").content.decode()
    assert "<title>Moderation and operations | ImageService admin</title>" in page
    assert "ImageService moderation" in page
    assert "Django administration" not in page and "Django site admin" not in page


def test_a_published_images_renditions_are_links(moderator: User, make_image: Any) -> None:
    image: Image = make_image(state=State.PUBLISHED)
    image.renditions = [image.md5, f"{image.md5}_200x200.jpg"]
    image.save(update_fields=["renditions"])
    page = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/change/").content.decode()
    assert f'{image.md5}_200x200.jpg">{image.md5}_200x200.jpg</a></li>' in page
    assert "[&#x27;" not in page  # not a Python list


def test_an_image_page_uses_plain_words(moderator: User, make_image: Any) -> None:
    image = make_image()
    page = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/change/").content.decode()
    assert "Uploaded:" in page and "Created at:" not in page


def test_long_ids_are_shortened_with_the_full_value_on_hover(
    moderator: User, make_image: Any
) -> None:
    image = make_image()
    history = client_for(moderator).get("/admin/uploads/imageevent/").content.decode()
    assert f'class="ident" title="{image.md5}">{image.md5}</a>' in history
    assert ">timeline</a>" in history and "⏱" not in history


@pytest.mark.parametrize(
    "url",
    ["/admin/review/", "/admin/review/grid/", "/admin/review/dashboard/", "/admin/"],
)
def test_console_pages_have_no_inline_scripts_or_styles(
    moderator: User, make_image: Any, url: str
) -> None:
    make_image()
    page = client_for(moderator).get(url).content.decode()
    assert "<style" not in page
    assert " style=" not in page
    assert " onclick=" not in page and " onkeydown=" not in page
    assert "/static/moderation/console.css" in page
