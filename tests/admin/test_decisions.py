"""Decisions in the admin go through the image's transitions: they change the state, write an
event naming the moderator, blocklist rejected images and queue the work and notifications
that follow. When someone decided first, nothing changes and the moderator is told."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from moderation.models import BlockedImage
from notifications.models import Notification
from publishing.tasks import make_thumbnails
from tests.admin.conftest import client_for, create_image
from tests.photos import photo
from tests.services import missing_service
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db


def queued_actors(broker: Any) -> list[tuple[str, list[Any]]]:
    """(actor, args) of every message waiting in the stub broker's queues."""
    messages = (
        dramatiq.Message.decode(data) for queue in broker.queues.values() for data in queue.queue
    )
    return [(message.actor_name, list(message.args)) for message in messages]


def decision_events(image: Image) -> list[ImageEvent]:
    return list(ImageEvent.objects.filter(image=image, user__isnull=False))


def test_approving_moves_the_image_on_and_queues_its_thumbnails(
    moderator: User, flagged: Image, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(moderator).post(f"/admin/uploads/image/{flagged.pk}/approve/")
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert flagged.state == State.APPROVED
    assert flagged.decided_by == moderator
    (event,) = decision_events(flagged)
    assert (event.kind, event.from_state, event.to_state) == (
        EventKind.TRANSITION,
        State.IN_REVIEW,
        State.APPROVED,
    )
    assert event.actor == "user:mod"
    assert ("make_thumbnails", [str(flagged.pk)]) in queued_actors(broker)

    # The queued work publishes the image and tells PinsterApi.
    make_thumbnails(str(flagged.pk))
    flagged.refresh_from_db()
    assert flagged.state == State.PUBLISHED
    assert Notification.objects.filter(image=flagged, kind=Notification.Kind.APPROVED).exists()


def test_rejecting_asks_for_a_reason_blocklists_the_image_and_queues_the_notification(
    moderator: User, flagged: Image, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client_for(moderator).post(
            f"/admin/uploads/image/{flagged.pk}/reject/",
            {"reject-reason": "Spam or advertising", "reject-note": "a shop's banner"},
        )
    flagged.refresh_from_db()
    assert flagged.state == State.REJECTED
    assert flagged.decision_reason == "Spam or advertising: a shop's banner"
    (event,) = decision_events(flagged)
    assert event.to_state == State.REJECTED
    assert event.reason == "Spam or advertising: a shop's banner"
    entry = BlockedImage.objects.get(sha256=flagged.sha256)
    assert entry.source_image == flagged and entry.phash is not None
    notification = Notification.objects.get(image=flagged)
    assert notification.kind == Notification.Kind.REJECTED


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "This field is required"),
        ({"reject-reason": "Other"}, "Say why"),
        ({"reject-reason": "Something we never offered"}, "Select a valid choice"),
    ],
)
def test_a_rejection_without_a_valid_reason_changes_nothing(
    moderator: User, make_image: Any, data: dict[str, str], problem: str
) -> None:
    image = make_image()
    response = client_for(moderator).post(
        f"/admin/uploads/image/{image.pk}/reject/", data, follow=True
    )
    assert problem in response.content.decode()
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW
    assert decision_events(image) == []


def test_other_takes_the_free_text_as_the_reason(moderator: User, flagged: Image) -> None:
    client_for(moderator).post(
        f"/admin/uploads/image/{flagged.pk}/reject/",
        {"reject-reason": "Other", "reject-note": "  a photo of an ID card  "},
    )
    flagged.refresh_from_db()
    assert flagged.decision_reason == "a photo of an ID card"


def test_after_a_decision_the_moderator_is_shown_the_next_image_in_the_queue(
    moderator: User, make_image: Any
) -> None:
    from datetime import timedelta

    first = make_image(waited=timedelta(hours=2))
    second = make_image(waited=timedelta(hours=1))
    client = client_for(moderator)
    response = client.post(f"/admin/uploads/image/{first.pk}/approve/", follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/uploads/image/{second.pk}/change/"
    assert f"Image {first.md5} is now approved." in response.content.decode()
    response = client.post(f"/admin/uploads/image/{second.pk}/approve/")
    assert response["Location"] == f"/admin/uploads/image/{second.pk}/change/"


def test_a_decision_on_an_image_someone_else_decided_changes_nothing_and_says_so(
    moderator: User, flagged: Image
) -> None:
    colleague = User.objects.create_user("alice", is_staff=True)
    colleague.groups.add(Group.objects.get(name="Moderators"))
    assert flagged.approve(by=colleague)

    response = client_for(moderator).post(
        f"/admin/uploads/image/{flagged.pk}/reject/",
        {"reject-reason": "Violence or gore"},
        follow=True,
    )
    page = response.content.decode()
    assert f"Image {flagged.md5} was not changed: it is already approved by alice." in page
    flagged.refresh_from_db()
    assert flagged.state == State.APPROVED and flagged.decided_by == colleague
    assert [e.user for e in decision_events(flagged)] == [colleague]
    assert not BlockedImage.objects.filter(sha256=flagged.sha256).exists()


def test_the_image_page_offers_decisions_only_while_the_image_is_in_review(
    moderator: User, auditor: User, flagged: Image
) -> None:
    url = f"/admin/uploads/image/{flagged.pk}/change/"
    page = client_for(moderator).get(url).content.decode()
    assert f'action="/admin/uploads/image/{flagged.pk}/approve/"' in page
    assert f'action="/admin/uploads/image/{flagged.pk}/reject/"' in page
    assert 'name="reject-reason"' in page
    assert "approve/" not in client_for(auditor).get(url).content.decode()
    flagged.approve(by=moderator)
    assert "approve/" not in client_for(moderator).get(url).content.decode()


def test_taking_down_a_published_image_unpublishes_it_and_tells_pinster(
    moderator: User, make_image: Any, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(state=State.PUBLISHED, data=photo(320, 240))
    page = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/change/").content.decode()
    assert f'action="/admin/uploads/image/{image.pk}/take-down/"' in page
    with django_capture_on_commit_callbacks(execute=True):
        client_for(moderator).post(
            f"/admin/uploads/image/{image.pk}/take-down/",
            {"take_down-reason": "Reported by users", "take_down-note": "three reports"},
        )
    image.refresh_from_db()
    assert image.state == State.TAKEN_DOWN
    assert image.decision_reason == "Reported by users: three reports"
    assert Notification.objects.filter(image=image, kind=Notification.Kind.TAKEN_DOWN).exists()
    assert ("unpublish_image", [str(image.pk)]) in queued_actors(broker)


def test_bulk_approve_approves_the_images_in_review_and_names_the_others(
    moderator: User, make_image: Any
) -> None:
    waiting = [make_image(), make_image()]
    decided = make_image(state=State.REJECTED)
    response = client_for(moderator).post(
        "/admin/uploads/image/?show=all",
        {
            "action": "approve_selected",
            "_selected_action": [str(i.pk) for i in [*waiting, decided]],
        },
        follow=True,
    )
    page = response.content.decode()
    assert "2 image(s) approved." in page
    assert f"Image {decided.md5} was not changed: it is already rejected." in page
    states = set(Image.objects.filter(pk__in=[i.pk for i in waiting]).values_list("state"))
    assert states == {(State.APPROVED,)}


def test_bulk_reject_asks_for_the_reason_first(
    moderator: User, make_image: Any, django_capture_on_commit_callbacks: Any
) -> None:
    images = [make_image(data=photo(320, 240, subject=s)) for s in ("coffee", "chelsea")]
    selected = [str(i.pk) for i in images]
    client = client_for(moderator)
    page = client.post(
        "/admin/uploads/image/", {"action": "reject_selected", "_selected_action": selected}
    )
    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode()
    assert all(i.md5 in page.content.decode() for i in images)
    assert set(Image.objects.values_list("state", flat=True)) == {State.IN_REVIEW}

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            "/admin/uploads/image/",
            {
                "action": "reject_selected",
                "_selected_action": selected,
                "confirm": "yes",
                "reason": "Hate symbols or harassment",
            },
            follow=True,
        )
    assert "2 image(s) rejected." in done.content.decode()
    for image in images:
        image.refresh_from_db()
        assert (image.state, image.decision_reason) == (
            State.REJECTED,
            "Hate symbols or harassment",
        )
    assert Notification.objects.filter(kind=Notification.Kind.REJECTED).count() == 2
    assert BlockedImage.objects.filter(sha256__in=[i.sha256 for i in images]).count() == 2


def test_bulk_take_down_only_takes_down_published_images(moderator: User, make_image: Any) -> None:
    published = make_image(state=State.PUBLISHED)
    waiting = make_image()
    client_for(moderator).post(
        "/admin/uploads/image/?show=all",
        {
            "action": "take_down_selected",
            "_selected_action": [str(published.pk), str(waiting.pk)],
            "confirm": "yes",
            "reason": "Legal request",
        },
    )
    assert Image.objects.get(pk=published.pk).state == State.TAKEN_DOWN
    assert Image.objects.get(pk=waiting.pk).state == State.IN_REVIEW


def test_moderators_can_put_an_uploaded_image_on_the_blocklist(
    moderator: User, make_image: Any
) -> None:
    image = make_image(state=State.PUBLISHED, data=photo(320, 240, subject="rocket"))
    client_for(moderator).post(
        "/admin/uploads/image/?show=all",
        {"action": "block_selected", "_selected_action": [str(image.pk)]},
    )
    entry = BlockedImage.objects.get(sha256=image.sha256)
    assert entry.added_by == moderator and entry.phash is not None


def race(image: Image, decisions: list[tuple[User, str]]) -> dict[str, str]:
    """Post the decisions at the same moment from separate threads (and connections)."""
    barrier = threading.Barrier(len(decisions))
    pages: dict[str, str] = {}

    def decide(user: User, decision: str) -> None:
        client = client_for(user)
        barrier.wait()
        response = client.post(
            f"/admin/uploads/image/{image.pk}/{decision}/",
            {"reject-reason": "Violence or gore"},
            follow=True,
        )
        pages[user.username] = response.content.decode()
        connection.close()

    threads = [threading.Thread(target=decide, args=pair) for pair in decisions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return pages


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_moderators_deciding_at_once_exactly_one_wins_and_the_other_is_told(
    broker: Any,
) -> None:
    from django.core.management import call_command

    if connection.vendor != "postgresql":
        # SQLite's in-memory test database serialises writers by failing them, not waiting.
        missing_service("PostgreSQL, for decisions from concurrent connections")
    call_command("setup_roles", verbosity=0)
    group = Group.objects.get(name="Moderators")
    anna, ben = (User.objects.create_user(name, is_staff=True) for name in ("anna", "ben"))
    group.user_set.add(anna, ben)

    for image in [create_image(data=photo(320, 240)) for _ in range(4)]:
        pages = race(image, [(anna, "approve"), (ben, "reject")])
        image.refresh_from_db()
        (event,) = decision_events(image)
        winner = event.user.username
        loser = "ben" if winner == "anna" else "anna"
        assert image.state == (State.APPROVED if winner == "anna" else State.REJECTED)
        state = image.get_state_display().lower()
        assert f"is now {state}" in pages[winner]
        assert f"was not changed: it is already {state} by {winner}" in pages[loser]
        if image.state == State.REJECTED:
            assert Notification.objects.filter(image=image).count() == 1
        else:
            assert ("make_thumbnails", [str(image.pk)]) in queued_actors(broker)
