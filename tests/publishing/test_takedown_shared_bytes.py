"""Public keys derive from the md5 alone: two users who upload the same photo share them. Taking
one down must not break the other, and the last one taken down removes everything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.storage import storages
from rest_framework.test import APIClient

from moderation.tasks import moderate_image
from publishing import services as publishing
from publishing.tasks import make_thumbnails, unpublish_image
from tests.admin.test_decisions import queued_actors
from tests.photos import photo
from tests.uploads.conftest import data_url
from uploads.models import PUBLISHING, Image, State

pytestmark = pytest.mark.django_db


@pytest.fixture
def publish_as(
    make_token: Callable[..., str], django_capture_on_commit_callbacks: Any, broker: Any
) -> Callable[[str, bytes], Image]:
    def publish(user_id: str, data: bytes) -> Image:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user_id=user_id)}")
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post("/", {"data": {"image": data_url(data)}}, format="json")
        assert answer.status_code == 202, answer.content
        moderate_image(answer.json()["id"])
        make_thumbnails(answer.json()["id"])
        image = Image.objects.get(pk=answer.json()["id"])
        assert image.state == State.PUBLISHED
        return image

    return publish


def public(key: str) -> bool:
    return bool(storages["public"].exists(key))


def test_taking_down_one_copy_keeps_what_the_other_still_shows(publish_as, moderator, client):
    data = photo(800, 600)
    first = publish_as("user-a", data)
    second = publish_as("user-b", data)
    assert first.md5 == second.md5 and first.pk != second.pk
    assert client.get(f"/{first.md5}_200x200").status_code in (200, 302)  # on demand
    # Whichever row the request picked, let only the first one list it.
    on_demand = f"{first.md5}_200x200"
    Image.objects.filter(pk=second.pk).update(renditions=second.renditions)
    Image.objects.filter(pk=first.pk).update(renditions=[*first.renditions, on_demand])
    first.refresh_from_db()
    shared = {first.md5, *first.renditions, *second.renditions}

    assert first.take_down(by=moderator, reason="reported by its owner")
    unpublish_image(str(first.pk))

    assert all(public(key) for key in shared)
    event = first.events.filter(actor="system:unpublish_image").get()
    assert event.details == {"removed": [], "kept_for": str(second.pk)}
    assert str(second.pk) in event.reason

    assert Image.objects.get(pk=second.pk).take_down(by=moderator, reason="reported")
    unpublish_image(str(second.pk))

    assert not any(public(key) for key in shared)  # the on-demand key the other row listed too


@pytest.mark.parametrize(
    ("other_state", "kept"),
    [
        (State.PUBLISHING, True),
        (State.APPROVED, False),  # it writes them all again when it publishes
        (State.REJECTED, False),
        (State.TAKEN_DOWN, False),
        (State.FAILED, False),
    ],
)
def test_only_a_copy_published_or_being_published_keeps_the_objects(
    publish_as, moderator, other_state, kept
):
    data = photo(800, 600)
    first = publish_as("user-a", data)
    second = publish_as("user-b", data)
    Image.objects.filter(pk=second.pk).update(state=other_state)
    assert first.take_down(by=moderator, reason="reported")

    removed, kept_for = publishing.release_public_objects(first.md5)

    if kept:
        assert (removed, kept_for) == ([], str(second.pk))
    else:
        assert kept_for is None
        assert set(removed) == {first.md5, *first.renditions}
    assert public(first.md5) is kept


def test_objects_kept_for_a_copy_being_published_go_when_that_publication_fails(
    publish_as, moderator, django_capture_on_commit_callbacks, broker
):
    data = photo(800, 600)
    first = publish_as("user-a", data)
    second = publish_as("user-b", data)
    Image.objects.filter(pk=second.pk).update(state=State.PUBLISHING, attempts=0)
    assert first.take_down(by=moderator, reason="reported")
    unpublish_image(str(first.pk))
    assert public(first.md5)

    second = Image.objects.get(pk=second.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert second.give_up(PUBLISHING, reason="store down", from_state=State.PUBLISHING)
    assert ("unpublish_image", [str(second.pk)]) in queued_actors(broker)
    unpublish_image(str(second.pk))  # as the worker would

    assert Image.objects.get(pk=second.pk).state == State.FAILED
    assert not public(first.md5)
    assert not any(public(key) for key in first.renditions)


def test_an_image_taken_down_while_its_thumbnails_are_written_keeps_nothing_public(
    post, moderator, monkeypatch
):
    from publishing import tasks

    image_id = post({"data": {"image": data_url(photo(800, 600))}}).json()["id"]
    moderate_image(image_id)
    real = publishing.publish_image

    def taken_down_meanwhile(image, **options):
        keys = real(image, **options)
        Image.objects.get(pk=image.pk).take_down(by=moderator, reason="reported")
        unpublish_image(str(image.pk))  # ran before the last writes landed, say
        real(image, **options)  # the writes that came after it
        return keys

    monkeypatch.setattr(tasks.publishing, "publish_image", taken_down_meanwhile)
    make_thumbnails(image_id)

    image = Image.objects.get(pk=image_id)
    assert image.state == State.TAKEN_DOWN
    assert not public(image.md5)
    assert not any(public(key) for key in publishing.thumbnail_keys(image.md5))


def test_a_publication_given_up_removes_what_it_wrote(post, settings, monkeypatch):
    from publishing import tasks

    settings.MAX_STAGE_ATTEMPTS = 1
    image_id = post({"data": {"image": data_url(photo(800, 600))}}).json()["id"]
    moderate_image(image_id)
    real = publishing.publish_image

    def writes_then_dies(image, **options):
        real(image, **options)
        raise OSError("the store went away after some writes")

    monkeypatch.setattr(tasks.publishing, "publish_image", writes_then_dies)
    make_thumbnails(image_id)  # gives up at once: attempts exhausted
    unpublish_image(image_id)  # enqueued by the transition; run it as the worker would

    image = Image.objects.get(pk=image_id)
    assert image.state == State.FAILED
    assert not public(image.md5)
    assert not any(public(key) for key in publishing.thumbnail_keys(image.md5))
