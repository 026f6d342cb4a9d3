"""No query parameter gives a server error in the admin: every list page answers a hostile or
malformed parameter with its page, or a 400 admin page (never JSON, never a 500). Lists are
filtered only by the filters they declare: `?description__regex=` is refused, not run."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.admin.conftest import client_for
from uploads.models import Image, State

pytestmark = pytest.mark.django_db

HOSTILE = [
    ("foo", "1"),
    ("description__regex", "(a+)+$"),
    ("id__regex", ".*"),
    ("user_id__startswith", "u"),
    ("image__user_id__regex", "x"),
    ("moderator", "abc"),
    ("moderator", "99999999999999999999999"),
    ("image", "notauuid"),
    ("uploader", "\x00"),
    ("user_id", "\x00"),
    ("show", "bogus"),
    ("label", '"}{\x00'),
    ("backend", "x" * 3000),
    ("by", "nobody"),
    ("actor", "%"),
    ("kind__exact", "nonsense"),
    ("state__exact", "\x00"),
    ("created_at__gte", "notadate"),
    ("at__gte", "2026-13-45"),
    ("at__lt", "99999-01-01"),
    ("image__id__exact", "notauuid"),
    ("p", "abc"),
    ("p", "-1"),
    ("p", "99999"),
    ("o", "abc"),
    ("o", "99.-7"),
    ("q", "\x00"),
    ("q", "x" * 10_000),
    ("_to_field", "password"),
    ("_popup", "1"),
    ("e", "1"),
    ("all", ""),
]


def changelists() -> list[str]:
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    ]


@pytest.fixture
def superuser(db: Any) -> User:
    return User.objects.create_superuser("root", password="root-password-1")


@pytest.fixture
def some_images(make_image: Any, moderator: User) -> list[Image]:
    return [make_image(), make_image(state=State.PUBLISHED, decided_by=moderator)]


def assert_admin_page(response: Any, what: str) -> None:
    assert response.status_code < 500, what
    if response.status_code >= 400:
        assert response.status_code == 400, what
        assert response["Content-Type"].startswith("text/html"), what
        assert "ImageService moderation" in response.content.decode(), what


def test_no_parameter_on_any_list_page_gives_a_server_error(
    superuser: User, some_images: list[Image]
) -> None:
    client = client_for(superuser)
    pages = [*changelists(), "/admin/uploads/imageevent/export/"]
    assert len(pages) >= 7
    for url in pages:
        for name, value in HOSTILE:
            response = client.get(url, {name: value})
            assert_admin_page(response, f"{url}?{name}={value[:20]!r}")


@pytest.mark.parametrize(
    "query",
    [
        "/admin/uploads/imageevent/?moderator=abc",
        "/admin/uploads/imageevent/?image=notauuid",
        "/admin/uploads/image/?description__regex=(a%2B)%2B%24",
        "/admin/uploads/imageevent/?image__user_id__regex=.",
        "/admin/notifications/notification/?image__user_id__startswith=u",
    ],
)
def test_a_lookup_the_list_does_not_declare_is_a_bad_request_page(
    moderator: User, query: str
) -> None:
    response = client_for(moderator).get(query)
    assert response.status_code == 400
    page = response.content.decode()
    assert "<title>Bad request | ImageService admin</title>" in page
    assert "cannot be shown with these parameters" in page or "not allowed" in page


def test_the_declared_filters_and_the_admins_own_links_still_work(
    moderator: User, some_images: list[Image]
) -> None:
    waiting = some_images[0]
    client = client_for(moderator)
    for url in (
        f"/admin/uploads/image/?show=all&user_id={waiting.user_id}",
        f"/admin/uploads/imageevent/?image={waiting.pk}",
        f"/admin/uploads/imageevent/?moderator={moderator.pk}",
        "/admin/uploads/imageevent/?kind__exact=transition&at__gte=2000-01-01",
        f"/admin/notifications/notification/?image__id__exact={waiting.pk}",
        "/admin/moderation/moderationresult/?outcome__exact=in_review",
        "/admin/uploads/image/?created_at__gte=2000-01-01&show=published",
        "/admin/uploads/image/?_facets=True",
        "/admin/uploads/imageevent/?_facets=True&by=user",
    ):
        assert client.get(url).status_code == 200, url
    listed = client.get(f"/admin/uploads/image/?show=all&user_id={waiting.user_id}")
    assert [image.pk for image in listed.context["cl"].result_list] == [waiting.pk]


def test_refusals_inside_the_admin_are_admin_pages(auditor: User, make_image: Any) -> None:
    image = make_image()
    client = client_for(auditor)
    refused = client.post(f"/admin/uploads/image/{image.pk}/approve/")
    assert refused.status_code == 403
    assert "<title>Not allowed | ImageService admin</title>" in refused.content.decode()
    missing = client.get("/admin/uploads/image/00000000-0000-0000-0000-000000000000/preview/")
    assert missing.status_code == 404
    assert "<title>Not found | ImageService admin</title>" in missing.content.decode()


PARAMETER_NAMES = st.sampled_from(
    [
        "show",
        "label",
        "backend",
        "moderator",
        "image",
        "uploader",
        "actor",
        "by",
        "user_id",
        "kind__exact",
        "at__gte",
        "at__lt",
        "created_at__gte",
        "outcome__exact",
        "q",
        "o",
        "p",
    ]
)
VALUES = st.text(max_size=40) | st.sampled_from(["0", "-1", "1e9", "2026-02-30", "None"])


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    page=st.sampled_from(
        [
            "/admin/uploads/image/",
            "/admin/uploads/imageevent/",
            "/admin/moderation/moderationresult/",
        ]
    ),
    params=st.dictionaries(PARAMETER_NAMES, VALUES, max_size=3),
)
def test_generated_filter_values_never_give_a_server_error(
    moderator: User, page: str, params: dict[str, str]
) -> None:
    client = Client()
    client.force_login(moderator)
    assert_admin_page(client.get(page, params), f"{page} {params!r}")
