"""Grid triage: a page of tiles claimed for the moderator, one-tile decisions at once, bulk
decisions after a confirmation, and the claims of others respected."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from moderation.models import ReviewClaim
from tests.admin.conftest import bulk_images, client_for
from tests.photos import photo
from uploads.models import Image, State

pytestmark = pytest.mark.django_db
GRID = "/admin/review/grid/"
DECIDE = "/admin/review/grid/decide/"


def test_the_grid_claims_a_page_of_tiles_for_the_moderator(moderator: User) -> None:
    bulk_images(30)
    page = client_for(moderator).get(GRID, {"size": "12"})
    assert page.status_code == 200
    assert len(page.context["tiles"]) == 12
    assert ReviewClaim.objects.filter(moderator=moderator).count() == 12
    assert "Grid triage | ImageService admin" in page.content.decode()


def test_one_tiles_approve_button_decides_at_once(moderator: User) -> None:
    image, other = bulk_images(2)
    response = client_for(moderator).post(DECIDE, {"tile": f"approve:{image.pk}"}, follow=True)
    assert "1 image approved." in response.content.decode()
    image.refresh_from_db()
    other.refresh_from_db()
    assert (image.state, other.state) == (State.APPROVED, State.IN_REVIEW)


def test_a_bulk_decision_asks_for_a_confirmation_first(moderator: User, make_image: Any) -> None:
    images = [make_image(data=photo(200 + n, 150)) for n in range(3)]
    client = client_for(moderator)
    data = {
        "action": "reject",
        "id": [str(image.pk) for image in images],
        "reason": "Spam or advertising",
        "note": "",
    }
    asked = client.post(DECIDE, data)
    assert asked.status_code == 200
    assert "Reject 3 images?" in asked.content.decode()
    assert Image.objects.filter(state=State.IN_REVIEW).count() == 3
    done = client.post(DECIDE, {**data, "confirmed": "yes"}, follow=True)
    assert "3 images rejected." in done.content.decode()
    assert (
        Image.objects.filter(state=State.REJECTED, decision_reason="Spam or advertising").count()
        == 3
    )


def test_a_rejection_from_the_grid_needs_a_reason(moderator: User) -> None:
    (image,) = bulk_images(1)
    response = client_for(moderator).post(DECIDE, {"tile": f"reject:{image.pk}"}, follow=True)
    assert "Nothing was changed" in response.content.decode()
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW


def test_the_grid_leaves_out_and_refuses_images_another_moderator_holds(moderator: User) -> None:
    other = User.objects.create_user("noor", is_staff=True)
    other.groups.add(Group.objects.get(name="Moderators"))
    images = bulk_images(4)
    client_for(other).get(GRID, {"size": "12"})  # noor holds all four
    page = client_for(moderator).get(GRID)
    assert page.context["tiles"] == []
    response = client_for(moderator).post(DECIDE, {"tile": f"approve:{images[0].pk}"}, follow=True)
    assert "is open for noor" in response.content.decode()
    assert Image.objects.filter(state=State.IN_REVIEW).count() == 4


def test_auditors_see_the_grid_without_buttons_and_cannot_post(auditor: User) -> None:
    (image,) = bulk_images(1)
    client = client_for(auditor)
    page = client.get(GRID).content.decode()
    assert "read only" in page and 'name="tile"' not in page
    assert not ReviewClaim.objects.exists()
    assert client.post(DECIDE, {"tile": f"approve:{image.pk}"}).status_code == 403
