"""Who may see and do what in the admin: anonymous visitors and non-staff users are sent to the
login page, staff without a role see nothing, auditors read, moderators read and decide, and
nobody edits or deletes history."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from moderation.models import BlockedImage, ModerationResult
from tests.admin.conftest import client_for
from tests.photos import photo
from uploads.models import Image, ImageEvent, State

pytestmark = pytest.mark.django_db

VIEWERS = ("moderator", "auditor")


def pages(image: Image) -> dict[str, str]:
    event = ImageEvent.objects.filter(image=image).first()
    result = ModerationResult.objects.filter(image=image).first()
    blocked = BlockedImage.objects.create(sha256="b" * 64, reason="test")
    assert event is not None and result is not None
    return {
        "queue": "/admin/uploads/image/",
        "all images": "/admin/uploads/image/?show=all",
        "image page": f"/admin/uploads/image/{image.pk}/change/",
        "preview": f"/admin/uploads/image/{image.pk}/preview/",
        "thumbnail": f"/admin/uploads/image/{image.pk}/preview/?size=thumb",
        "history": "/admin/uploads/imageevent/",
        "image timeline": f"/admin/uploads/imageevent/?image={image.pk}",
        "event page": f"/admin/uploads/imageevent/{event.pk}/change/",
        "export": "/admin/uploads/imageevent/export/",
        "results": "/admin/moderation/moderationresult/",
        "result page": f"/admin/moderation/moderationresult/{result.pk}/change/",
        "blocklist": "/admin/moderation/blockedimage/",
        "blocklist entry": f"/admin/moderation/blockedimage/{blocked.pk}/change/",
        "deliveries": "/admin/notifications/notification/",
    }


@pytest.fixture
def image(make_image: Any) -> Image:
    return make_image(data=photo(320, 240))


@pytest.mark.parametrize("who", [None, "member"])
def test_anonymous_and_non_staff_users_are_sent_to_the_login_page_from_every_page(
    who: str | None, request: pytest.FixtureRequest, image: Image
) -> None:
    client = client_for(request.getfixturevalue(who) if who else None)
    for name, url in pages(image).items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/admin/login/"), name


def test_staff_without_a_role_are_refused_every_page(
    staff_without_role: User, image: Image
) -> None:
    client = client_for(staff_without_role)
    for name, url in pages(image).items():
        assert client.get(url).status_code == 403, name
    index = client.get("/admin/")
    assert b"moderation-dashboard" not in index.content


@pytest.mark.parametrize("who", VIEWERS)
def test_moderators_and_auditors_see_every_page(
    who: str, request: pytest.FixtureRequest, image: Image
) -> None:
    client = client_for(request.getfixturevalue(who))
    for name, url in pages(image).items():
        assert client.get(url).status_code == 200, name
    assert b"moderation-dashboard" in client.get("/admin/").content


@pytest.mark.parametrize("decision", ["approve", "reject", "take-down"])
@pytest.mark.parametrize("who", [None, "member", "staff_without_role", "auditor"])
def test_only_moderators_may_decide(
    who: str | None, decision: str, request: pytest.FixtureRequest, make_image: Any
) -> None:
    state = State.PUBLISHED if decision == "take-down" else State.IN_REVIEW
    image = make_image(state=state)
    client = client_for(request.getfixturevalue(who) if who else None)
    response = client.post(
        f"/admin/uploads/image/{image.pk}/{decision}/",
        {"reject-reason": "Spam or advertising", "take_down-reason": "Reported by users"},
    )
    assert response.status_code in (302, 403)
    if who in (None, "member"):
        assert response["Location"].startswith("/admin/login/")
    else:
        assert response.status_code == 403
    image.refresh_from_db()
    assert image.state == state
    assert not ImageEvent.objects.filter(image=image, user__isnull=False).exists()


@pytest.mark.parametrize(
    "action", ["approve_selected", "reject_selected", "take_down_selected", "block_selected"]
)
def test_auditors_have_no_bulk_actions(auditor: User, make_image: Any, action: str) -> None:
    image = make_image(data=photo(320, 240))
    client = client_for(auditor)
    listing = client.get("/admin/uploads/image/")
    assert action.encode() not in listing.content
    response = client.post(
        "/admin/uploads/image/",
        {
            "action": action,
            "_selected_action": [str(image.pk)],
            "confirm": "yes",
            "reason": "Spam or advertising",
        },
    )
    assert response.status_code in (200, 302)
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW
    assert not BlockedImage.objects.filter(sha256=image.sha256).exists()


def test_moderators_have_the_bulk_actions(moderator: User, make_image: Any) -> None:
    make_image()
    listing = client_for(moderator).get("/admin/uploads/image/").content.decode()
    for action in ("approve_selected", "reject_selected", "take_down_selected", "block_selected"):
        assert f'value="{action}"' in listing
    assert 'value="delete_selected"' not in listing


def test_the_decision_urls_only_accept_post(moderator: User, make_image: Any) -> None:
    image = make_image()
    client = client_for(moderator)
    for decision in ("approve", "reject", "take-down"):
        assert client.get(f"/admin/uploads/image/{image.pk}/{decision}/").status_code == 405
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW


@pytest.mark.parametrize("who", [*VIEWERS, "admin_user"])
def test_nobody_adds_changes_or_deletes_images_events_or_results(
    who: str, request: pytest.FixtureRequest, make_image: Any
) -> None:
    image = make_image()
    event = ImageEvent.objects.filter(image=image).first()
    result = ModerationResult.objects.filter(image=image).first()
    assert event is not None and result is not None
    client = client_for(request.getfixturevalue(who))
    for base, pk in (
        ("/admin/uploads/image/", image.pk),
        ("/admin/uploads/imageevent/", event.pk),
        ("/admin/moderation/moderationresult/", result.pk),
    ):
        assert client.get(f"{base}add/").status_code == 403, base
        assert client.get(f"{base}{pk}/delete/").status_code == 403, base
        assert client.post(f"{base}{pk}/delete/", {"post": "yes"}).status_code == 403, base
        assert client.post(f"{base}{pk}/change/", {"reason": "x"}).status_code == 403, base
    assert ImageEvent.objects.filter(pk=event.pk, reason=event.reason).exists()
    assert ModerationResult.objects.filter(pk=result.pk, reason="flagged for review").exists()
    assert Image.objects.filter(pk=image.pk).exists()


def test_moderators_add_and_remove_blocklist_entries_and_auditors_cannot(
    moderator: User, auditor: User
) -> None:
    entry = BlockedImage.objects.create(sha256="c" * 64, reason="test")
    auditor_client = client_for(auditor)
    assert auditor_client.get("/admin/moderation/blockedimage/add/").status_code == 403
    delete_url = f"/admin/moderation/blockedimage/{entry.pk}/delete/"
    assert auditor_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert BlockedImage.objects.filter(pk=entry.pk).exists()

    moderator_client = client_for(moderator)
    assert moderator_client.get("/admin/moderation/blockedimage/add/").status_code == 200
    assert moderator_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not BlockedImage.objects.filter(pk=entry.pk).exists()


def test_moderators_may_redeliver_notifications_and_auditors_may_not(
    moderator: User, auditor: User, make_image: Any
) -> None:
    from notifications.models import Notification

    url = "/admin/notifications/notification/"
    Notification.objects.create_for(make_image(), Notification.Kind.REJECTED)
    assert 'value="redeliver"' in client_for(moderator).get(url).content.decode()
    assert 'value="redeliver"' not in client_for(auditor).get(url).content.decode()


@pytest.mark.parametrize("who", [*VIEWERS, "admin_user"])
def test_delivery_attempts_are_read_only_for_everyone(
    who: str, request: pytest.FixtureRequest, make_image: Any
) -> None:
    from django.contrib import admin
    from django.utils import timezone

    from notifications.models import DeliveryAttempt, Notification

    notification = Notification.objects.create_for(make_image(), Notification.Kind.REJECTED)
    attempt = DeliveryAttempt.objects.create(
        notification=notification, number=1, at=timezone.now(), latency_ms=5, result="failed"
    )
    assert not admin.site.is_registered(DeliveryAttempt)  # shown inline on its notification
    client = client_for(request.getfixturevalue(who))
    page = f"/admin/notifications/notification/{notification.pk}/change/"
    assert client.get(page).status_code == 200
    assert client.post(page, {"delivery_attempts-TOTAL_FORMS": "0"}).status_code == 403
    assert client.post(page.replace("change", "delete"), {"post": "yes"}).status_code == 403
    assert DeliveryAttempt.objects.filter(pk=attempt.pk).exists()
