"""The console's lifecycle decisions: a takedown shows, before it is confirmed, how many other
pins show the same bytes and takes them down too; a restore asks for a reason; failed images
are put back at the stage that failed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from moderation.apps import BlockedMeanwhile
from moderation.models import BankEntry, BlockedImage
from notifications.models import Notification
from tests.admin.conftest import client_for
from tests.photos import photo
from uploads.models import EventKind, Image, State
from uploads.services import take_down_content

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/uploads/image/?show=all"


def test_a_takedown_says_how_many_other_pins_show_the_bytes_and_takes_them_down_too(
    moderator: User, make_image: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = photo(320, 240, subject="motorcycle")
    shown = make_image(state=State.PUBLISHED, data=data)
    copies = [make_image(state=s, data=data) for s in (State.PUBLISHED, State.APPROVED)]
    in_review = make_image(state=State.IN_REVIEW, data=data)
    other = make_image(state=State.PUBLISHED, data=photo(320, 240, subject="rocket"))
    client = client_for(moderator)

    page = client.get(f"/admin/uploads/image/{shown.pk}/change/").content.decode()
    assert "2 other pins show these bytes" in page
    ask = client.post(
        CHANGELIST, {"action": "take_down_selected", "_selected_action": [str(shown.pk)]}
    )
    assert "2 other pins show the same bytes" in ask.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            CHANGELIST,
            {
                "action": "take_down_selected",
                "_selected_action": [str(shown.pk)],
                "confirm": "yes",
                "reason": "Legal request",
            },
        )

    states = {i.pk: i.state for i in Image.objects.all()}
    assert states[shown.pk] == State.TAKEN_DOWN
    assert [states[c.pk] for c in copies] == [State.TAKEN_DOWN, State.TAKEN_DOWN]
    assert states[in_review.pk] == State.REJECTED
    assert states[other.pk] == State.PUBLISHED
    for copy in [*copies, in_review]:
        event = copy.events.get(kind=EventKind.TRANSITION, user=moderator)
        assert event.details == {"same_bytes_as": str(shown.pk)}
        assert event.reason == f"same bytes as taken-down image {shown.pk}: Legal request"
        assert Notification.objects.filter(image=copy).count() == 1  # each its own notice
    entry = BlockedImage.objects.get(sha256=shown.sha256)
    assert entry.reason == "taken down: Legal request" and entry.phash is not None


def test_a_restore_needs_a_reason_and_unblocks_and_republishes(
    moderator: User, make_image: Any, broker: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(state=State.PUBLISHED, data=photo(320, 240, subject="coffee"))
    assert image.take_down(by=moderator, reason="Reported by users")
    assert BlockedImage.objects.filter(sha256=image.sha256).exists()
    assert BankEntry.objects.filter(source_image=image, bank__builtin=True).exists()
    client = client_for(moderator)
    selected = {"action": "restore_selected", "_selected_action": [str(image.pk)]}

    client.post(CHANGELIST, {**selected, "confirm": "yes", "reason": ""})
    assert Image.objects.get(pk=image.pk).state == State.TAKEN_DOWN  # no reason, no restore

    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANGELIST, {**selected, "confirm": "yes", "reason": "Appeal upheld"})

    image.refresh_from_db()
    assert (image.state, image.decision_reason, image.decided_by) == (
        State.APPROVED,
        "Appeal upheld",
        moderator,
    )
    assert not BlockedImage.objects.filter(sha256=image.sha256).exists()
    assert not BankEntry.objects.filter(source_image=image).exists()  # nor its look
    assert image.events.filter(kind=EventKind.BLOCKLIST, reason="unblocked: restored").exists()
    assert broker.queues["thumbnails"].qsize() == 1  # published again


def test_retry_puts_failed_images_back_and_names_the_others(
    moderator: User, make_image: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = make_image(state=State.FAILED, failure_reason="store down")
    published = make_image(state=State.PUBLISHED)

    with django_capture_on_commit_callbacks(execute=True):
        done = client_for(moderator).post(
            CHANGELIST,
            {"action": "retry_selected", "_selected_action": [str(failed.pk), str(published.pk)]},
            follow=True,
        )

    text = done.content.decode()
    assert "1 image put back at the stage that failed." in text
    assert "was not changed: it is already published" in text
    failed.refresh_from_db()
    # Its history says it failed in moderation (moderating → failed): moderation runs again.
    assert (failed.state, failed.failure_reason) == (State.RECEIVED, "")


def test_a_copy_whose_moderation_was_running_during_the_takedown_is_not_approved(
    moderator: User, make_image: Any
) -> None:
    data = photo(320, 240, subject="chelsea")
    shown = make_image(state=State.PUBLISHED, data=data)
    being_moderated = make_image(state=State.MODERATING, data=data)
    assert take_down_content(image=shown, by=moderator, reason="Legal request")

    # Its verdict was computed before the bytes were blocked: the approval is refused, the
    # attempt fails and the retry meets the blocklist.
    with pytest.raises(BlockedMeanwhile):
        being_moderated.moderated(State.APPROVED, reason="no labels", details={})

    assert Image.objects.get(pk=being_moderated.pk).state == State.MODERATING
