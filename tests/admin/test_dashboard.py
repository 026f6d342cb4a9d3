"""The dashboard at the top of the admin index."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.admin.conftest import client_for
from uploads.models import EventKind, ImageEvent, State

pytestmark = pytest.mark.django_db


def number(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert match, element_id
    return match.group(1)


def test_the_dashboard_counts_states_the_queue_and_todays_rejections_and_failures(
    moderator: User, make_image: Any
) -> None:
    make_image(waited=timedelta(hours=5, minutes=7))
    make_image(waited=timedelta(minutes=1))
    make_image(state=State.PUBLISHED)
    rejected = make_image(state=State.REJECTED)  # its event is "now": today
    make_image(state=State.FAILED)
    yesterday = timezone.now() - timedelta(days=1, hours=1)
    ImageEvent.objects.create(
        image=rejected,
        at=yesterday,
        kind=EventKind.TRANSITION,
        to_state=State.REJECTED,
        actor="user:someone",
    )
    page = client_for(moderator).get("/admin/").content.decode()
    assert number(page, "queue-length") == "2"
    assert number(page, "oldest-waiting") == "5h 7m"
    assert number(page, "rejected-today") == "1"
    assert number(page, "failed-today") == "1"
    assert 'data-state="published">Published&nbsp;<b>1</b>' in page
    assert 'data-state="in_review">In review&nbsp;<b>2</b>' in page
    assert "/admin/uploads/image/?show=published" in page


def test_the_dashboard_takes_three_queries_whatever_the_numbers(
    moderator: User, make_image: Any, django_assert_num_queries: Any
) -> None:
    from django.template import Context, Template
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = moderator
    template = Template("{% load moderation_console %}{% moderation_dashboard %}")
    moderator.has_perm("uploads.view_image")  # permission cache
    for _ in range(3):
        make_image()
    with django_assert_num_queries(3):
        template.render(Context({"request": request}))
