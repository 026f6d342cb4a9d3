"""Claims of the review workspace: an image opened by one moderator is not handed to another
until the claim lapses or is given back; a race for one image has one winner."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from moderation.console import claims
from moderation.models import ReviewClaim
from tests.admin.conftest import bulk_images
from uploads.models import State


@pytest.fixture
def second_moderator(moderator: User) -> User:
    user = User.objects.create_user("noor", password="noor-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


@pytest.mark.django_db
def test_the_next_image_is_the_oldest_one_nobody_else_holds(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    oldest = make_image(waited=timedelta(hours=2))
    newer = make_image(waited=timedelta(hours=1))
    assert claims.claim_next(moderator) == oldest
    assert claims.claim_next(second_moderator) == newer
    assert claims.claim_next(second_moderator, exclude=[newer.pk]) is None
    assert claims.claim_next(moderator) == oldest  # still ours: handed back after a reload


@pytest.mark.django_db
def test_a_lapsed_claim_is_free_for_anyone(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    image = make_image()
    assert claims.take(image.pk, moderator)
    assert not claims.take(image.pk, second_moderator)
    ReviewClaim.objects.filter(image=image).update(until=timezone.now() - timedelta(seconds=1))
    assert claims.take(image.pk, second_moderator)
    assert ReviewClaim.objects.get(image=image).moderator == second_moderator


@pytest.mark.django_db
def test_a_claim_lasts_the_configured_time(moderator: User, make_image: Any, settings: Any) -> None:
    settings.REVIEW_CLAIM_SECONDS = 120
    image = make_image()
    before = timezone.now()
    claims.take(image.pk, moderator)
    until = ReviewClaim.objects.get(image=image).until
    assert before + timedelta(seconds=119) < until < timezone.now() + timedelta(seconds=121)


@pytest.mark.django_db
def test_a_released_claim_is_handed_to_the_next_moderator(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    image = make_image()
    claims.take(image.pk, moderator)
    assert claims.release([image.pk], second_moderator) == 0  # not theirs to give back
    assert claims.release([image.pk], moderator) == 1
    assert claims.claim_next(second_moderator) == image


@pytest.mark.django_db
def test_a_page_of_the_grid_claims_only_images_nobody_else_holds(
    moderator: User, second_moderator: User
) -> None:
    images = bulk_images(10)
    first = claims.claim_page(moderator, count=4)
    second = claims.claim_page(second_moderator, count=10)
    assert len(first) == 4 and len(second) == 6
    assert not {i.pk for i in first} & {i.pk for i in second}
    assert {i.pk for i in first + second} == {i.pk for i in images}
    assert ReviewClaim.objects.count() == 10


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_moderators_racing_for_one_queue_each_get_different_images(moderator: User) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the race needs a database that takes concurrent writes")
    team = [moderator] + [User.objects.create_user(f"racer{n}", is_staff=True) for n in range(5)]
    images = bulk_images(12)
    won: dict[str, list[Any]] = {user.username: [] for user in team}
    start = threading.Barrier(len(team))

    def work(user: User) -> None:
        try:
            start.wait()
            taken: list[Any] = []
            while (image := claims.claim_next(user, exclude=taken)) is not None:
                taken.append(image.pk)
            won[user.username] = taken
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in team]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [pk for taken in won.values() for pk in taken]
    assert sorted(every) == sorted(image.pk for image in images)  # each exactly once
    assert all(image.state == State.IN_REVIEW for image in images)
