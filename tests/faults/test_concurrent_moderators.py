"""Two moderators deciding the same image at the same moment, on PostgreSQL: exactly one
decision wins, one event is written, and the loser is told it lost (False)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from tests.faults.helpers import assert_integrity
from tests.photos import photo
from tests.services import missing_service
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 12


@pytest.fixture
def second_moderator(moderator: User) -> User:
    user = User.objects.create_user("mod2", password="mod-password-2", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


def at_once(*decisions: Callable[[], bool]) -> list[bool]:
    """Run the decisions in threads released together; each thread uses its own connection."""
    barrier = threading.Barrier(len(decisions))
    results: list[Any] = [None] * len(decisions)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = decisions[index]()
        except Exception as exc:  # surfaced by the assertion below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(decisions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.services
def test_an_approval_and_a_rejection_at_once_one_wins(
    make_image, moderator, second_moderator, broker
):
    if connection.vendor != "postgresql":
        missing_service("PostgreSQL, whose row locks this is about")
    images = [
        make_image(photo(64, 48, quality=50 + i), state=State.IN_REVIEW) for i in range(ROUNDS)
    ]
    for image in images:
        approve = Image.objects.get(pk=image.pk)
        reject = Image.objects.get(pk=image.pk)

        results = at_once(
            lambda approve=approve: approve.approve(by=moderator, reason="fine"),
            lambda reject=reject: reject.reject(by=second_moderator, reason="not fine"),
        )

        assert sorted(results) == [False, True], results
        image.refresh_from_db()
        assert image.state == (State.APPROVED if results[0] else State.REJECTED)
        assert image.decided_by == (moderator if results[0] else second_moderator)
        decided = ImageEvent.objects.filter(
            image=image, kind=EventKind.TRANSITION, from_state=State.IN_REVIEW
        )
        assert decided.count() == 1
    broker.flush_all()
    assert_integrity()


def test_two_approvals_at_once_approve_once(make_image, moderator, second_moderator, broker):
    image = make_image(photo(64, 48), state=State.IN_REVIEW)
    first, second = Image.objects.get(pk=image.pk), Image.objects.get(pk=image.pk)

    results = at_once(
        lambda: first.approve(by=moderator), lambda: second.approve(by=second_moderator)
    )

    assert sorted(results) == [False, True], results
    assert ImageEvent.objects.filter(image=image, to_state=State.APPROVED).count() == 1
    assert broker.queues["thumbnails"].qsize() == 1  # one publishing job, not two
    broker.flush_all()
