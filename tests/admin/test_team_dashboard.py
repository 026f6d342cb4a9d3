"""The team dashboard: decisions per moderator per day, the median wait from entering review
to a decision, the share of rejections and takedowns later restored, and who holds what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from moderation.console import claims
from tests.admin.conftest import client_for
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db
DASHBOARD = "/admin/review/dashboard/"


def decided(image: Image, user: User, to: str, *, after: timedelta) -> None:
    """A decision event `after` the image entered review (as the transitions write it)."""
    entered = ImageEvent.objects.get(image=image, to_state=State.IN_REVIEW).at
    ImageEvent.objects.create(
        image=image,
        at=entered + after,
        kind=EventKind.TRANSITION,
        from_state=State.IN_REVIEW,
        to_state=to,
        actor=f"user:{user.username}",
        user=user,
    )


def restored(image: Image, user: User, from_state: str) -> None:
    ImageEvent.objects.create(
        image=image,
        kind=EventKind.TRANSITION,
        from_state=from_state,
        to_state=State.APPROVED,
        actor=f"user:{user.username}",
        user=user,
        reason="restored",
    )


def test_the_dashboard_counts_decisions_waits_and_restores(
    moderator: User, make_image: Any
) -> None:
    noor = User.objects.create_user("noor", is_staff=True)
    noor.groups.add(Group.objects.get(name="Moderators"))
    images = [make_image(waited=timedelta(hours=2)) for _ in range(4)]
    decided(images[0], moderator, State.APPROVED, after=timedelta(minutes=10))
    decided(images[1], moderator, State.REJECTED, after=timedelta(minutes=20))
    decided(images[2], noor, State.REJECTED, after=timedelta(minutes=30))
    restored(images[1], noor, State.REJECTED)
    claims.take(images[3].pk, noor)

    page = client_for(moderator).get(DASHBOARD)
    assert page.status_code == 200
    rows = {row["moderator"]: row for row in page.context["rows"]}
    assert rows["mod"]["total"] == 2 and rows["noor"]["total"] == 1
    today = timezone.localdate()
    assert page.context["days"][-1] == today
    assert sum(rows["mod"]["days"]) == 2
    assert page.context["median_wait"] == "20m"
    assert page.context["overturned"] == {"total": 2, "restored": 1, "share": "50.0%"}
    assert page.context["holders"] == [("noor", 1)]
    html = page.content.decode()
    assert "Team dashboard | ImageService admin" in html
    assert "imageservice_review_queue_oldest_seconds" in html


def test_the_dashboard_of_a_quiet_team_says_so(auditor: User) -> None:
    page = client_for(auditor).get(DASHBOARD).content.decode()
    assert "No decisions in the last 7 days." in page
    assert 'id="dash-overturned">-<' in page
