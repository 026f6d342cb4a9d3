"""The pipeline backbone: every accepted upload reaches a final state, exactly once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import dramatiq
import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from moderation.backends import TestBackend, UnmoderatableImage
from moderation.tasks import moderate_image
from publishing.tasks import make_thumbnails
from tests import services
from tests.photos import photo
from tests.uploads.conftest import data_url
from uploads.models import MODERATION, PUBLISHING, EventKind, Image, ImageEvent, State
from uploads.pipeline import reconcile_images

FINAL = {State.PUBLISHED, State.REJECTED, State.FAILED, State.IN_REVIEW}


@pytest.fixture(autouse=True)
def scripted_moderation():
    TestBackend.reset()
    yield TestBackend
    TestBackend.reset()


def wait_for_state(image_id, states, timeout=60.0) -> Image:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image = Image.objects.get(pk=image_id)
        if image.state in states:
            return image
        time.sleep(0.1)
    raise AssertionError(f"image {image_id} stuck in {image.state}")


def transitions(image: Image) -> list[tuple[str, str]]:
    return list(
        image.events.filter(kind=EventKind.TRANSITION).values_list("from_state", "to_state")
    )


def assert_no_transition_twice(image: Image) -> None:
    counts = Counter(transitions(image))
    assert all(count == 1 for count in counts.values()), counts


@pytest.mark.django_db(transaction=True)
def test_an_upload_travels_to_published_through_the_stub_broker_and_worker(
    post, stub_worker, broker
):
    response = post({"data": {"image": data_url(photo(1200, 800))}})
    image = wait_for_state(response.json()["id"], {State.PUBLISHED, State.FAILED})

    assert image.state == State.PUBLISHED
    assert transitions(image) == [
        ("received", "moderating"),
        ("moderating", "approved"),
        ("approved", "publishing"),
        ("publishing", "published"),
    ]
    assert image.md5 in image.renditions
    assert f"{image.md5}_400x400" in image.renditions
    assert f"{image.md5}_400x400.webp" in image.renditions


@pytest.mark.django_db(transaction=True)
def test_explicit_content_ends_rejected_and_is_never_published(
    post, stub_worker, scripted_moderation
):
    jpeg = photo(640, 480, subject="coffee")
    scripted_moderation.answer(jpeg, ("Explicit Nudity", 99.8))
    response = post({"data": {"image": data_url(jpeg)}})
    image = wait_for_state(response.json()["id"], FINAL - {State.IN_REVIEW})

    assert image.state == State.REJECTED
    assert image.renditions == []
    from django.core.files.storage import storages

    assert not storages["public"].exists(image.md5)


@pytest.mark.django_db
def test_the_same_message_delivered_three_times_moves_the_image_once(post, jpeg, broker):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    for _ in range(3):
        moderate_image(image_id)
    for _ in range(3):
        make_thumbnails(image_id)

    image = Image.objects.get(pk=image_id)
    assert image.state == State.PUBLISHED
    assert_no_transition_twice(image)
    assert image.events.filter(kind=EventKind.RETRY).count() == 0


@pytest.mark.django_db
def test_a_claimed_image_cannot_be_claimed_again_while_its_lease_runs(post, jpeg):
    image = Image.objects.get(pk=post({"data": {"image": data_url(jpeg)}}).json()["id"])
    other = Image.objects.get(pk=image.pk)

    assert image.claim(MODERATION, lease_seconds=60)
    assert not other.claim(MODERATION, lease_seconds=60)
    Image.objects.filter(pk=image.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert other.claim(MODERATION, lease_seconds=60)
    assert Image.objects.get(pk=image.pk).attempts == 2


@pytest.mark.django_db
def test_transient_moderation_errors_are_retried_and_then_fail_closed_to_review(
    post, jpeg, scripted_moderation
):
    scripted_moderation.fail(jpeg, ConnectionError("Rekognition is throttling"))
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]

    for _ in range(4):
        with pytest.raises(ConnectionError):
            moderate_image(image_id)
    moderate_image(image_id)  # the fifth attempt gives up

    image = Image.objects.get(pk=image_id)
    assert image.state == State.IN_REVIEW
    assert "gave up" in image.failure_reason or "throttling" in image.failure_reason
    assert image.events.filter(kind=EventKind.ATTEMPT_FAILED).count() == 4
    assert not image.events.filter(to_state=State.APPROVED).exists()


@pytest.mark.django_db
def test_a_permanent_moderation_error_sends_the_image_to_review_at_once(
    post, jpeg, scripted_moderation
):
    scripted_moderation.fail(jpeg, UnmoderatableImage("InvalidImageFormatException"))
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]

    moderate_image(image_id)

    assert Image.objects.get(pk=image_id).state == State.IN_REVIEW


@pytest.mark.django_db
def test_a_task_that_fails_permanently_ends_failed_with_a_reason_never_approved(post, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    moderate_image(image_id)
    from django.core.files.storage import storages

    storages["default"].delete(Image.objects.get(pk=image_id).md5)  # the original is gone

    for _ in range(5):
        try:
            make_thumbnails(image_id)
        except Exception:
            pass

    image = Image.objects.get(pk=image_id)
    assert image.state == State.FAILED
    assert image.failure_reason
    assert image.events.filter(kind=EventKind.ATTEMPT_FAILED).count() == 4
    assert not image.events.filter(to_state=State.PUBLISHED).exists()


@pytest.mark.django_db
def test_a_worker_that_died_mid_task_is_noticed_by_the_reconciler(post, jpeg, broker):
    image = Image.objects.get(pk=post({"data": {"image": data_url(jpeg)}}).json()["id"])
    broker.flush_all()
    assert image.claim(MODERATION, lease_seconds=30)  # ...and the worker is killed here
    assert reconcile_images() == 0

    later = timezone.now() + timedelta(seconds=31)
    Image.objects.filter(pk=image.pk).update(lease_until=later - timedelta(seconds=60))
    assert reconcile_images() == 1
    assert broker.queues["moderation"].qsize() == 1
    assert reconcile_images() == 0  # not enqueued again while that message is fresh

    moderate_image(str(image.pk))
    assert Image.objects.get(pk=image.pk).state == State.APPROVED


@pytest.mark.django_db
@override_settings(STALE_AFTER_SECONDS=60)
def test_the_reconciler_re_enqueues_an_image_whose_message_was_lost(post, jpeg, broker):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    broker.flush_all()  # the broker lost the message
    assert reconcile_images() == 0  # not stale yet
    Image.objects.filter(pk=image_id).update(state_changed_at=timezone.now() - timedelta(minutes=2))

    assert reconcile_images() == 1
    assert broker.queues["moderation"].qsize() == 1
    assert ImageEvent.objects.filter(image_id=image_id, kind=EventKind.RECONCILED).count() == 1


@pytest.mark.django_db
def test_an_upload_succeeds_while_the_broker_is_down_and_is_driven_later(
    post, jpeg, broker, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(broker, "enqueue", broker_down)
    response = post({"data": {"image": data_url(jpeg)}})
    monkeypatch.undo()

    assert response.status_code == 202
    assert broker.queues["moderation"].qsize() == 0
    assert reconcile_images(quiet_for=0) == 1
    assert broker.queues["moderation"].qsize() == 1


@pytest.mark.django_db
def test_the_publishing_stage_gives_up_after_its_attempts(post, jpeg):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    moderate_image(image_id)
    Image.objects.filter(pk=image_id).update(state=State.PUBLISHING, attempts=5, lease_until=None)

    make_thumbnails(image_id)

    image = Image.objects.get(pk=image_id)
    assert image.state == State.FAILED
    assert "gave up" in image.failure_reason
    assert PUBLISHING.give_up == State.FAILED


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_upload_travels_to_published_through_redis_and_a_real_worker(post, settings):
    from dramatiq.brokers.redis import RedisBroker

    if connection.vendor != "postgresql":
        services.missing_service("PostgreSQL (worker threads and the test share the database)")
    with services.redis_server() as url, services.broker_in_use(RedisBroker(url=url)) as redis:
        worker = dramatiq.Worker(redis, worker_threads=2, worker_timeout=100)
        worker.start()
        try:
            ids = [
                post({"data": {"image": data_url(photo(800, 600, subject=s))}}).json()["id"]
                for s in ("astronaut", "coffee", "chelsea")
            ]
            images = [wait_for_state(i, {State.PUBLISHED, State.FAILED}) for i in ids]
        finally:
            worker.stop()
    assert [i.state for i in images] == [State.PUBLISHED] * 3
    for image in images:
        assert_no_transition_twice(image)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_image_whose_redis_queue_was_flushed_is_finished_after_reconciliation(post):
    from dramatiq.brokers.redis import RedisBroker

    if connection.vendor != "postgresql":
        services.missing_service("PostgreSQL (worker threads and the test share the database)")
    with services.redis_server() as url, services.broker_in_use(RedisBroker(url=url)) as redis:
        image_id = post({"data": {"image": data_url(photo(640, 480))}}).json()["id"]
        redis.flush_all()  # Redis lost everything
        worker = dramatiq.Worker(redis, worker_threads=2, worker_timeout=100)
        worker.start()
        try:
            time.sleep(0.5)
            assert Image.objects.get(pk=image_id).state == State.RECEIVED
            assert reconcile_images(quiet_for=0) == 1
            image = wait_for_state(image_id, {State.PUBLISHED, State.FAILED})
        finally:
            worker.stop()
    assert image.state == State.PUBLISHED


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_upload_travels_to_published_through_rabbitmq_with_confirmed_delivery(post):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    if connection.vendor != "postgresql":
        services.missing_service("PostgreSQL (worker threads and the test share the database)")
    with services.rabbitmq_vhost() as url:
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
        with services.broker_in_use(broker) as rabbit:
            worker = dramatiq.Worker(rabbit, worker_threads=2, worker_timeout=100)
            worker.start()
            try:
                image_id = post({"data": {"image": data_url(photo(800, 600))}}).json()["id"]
                image = wait_for_state(image_id, {State.PUBLISHED, State.FAILED})
            finally:
                worker.stop()
    assert image.state == State.PUBLISHED
    assert_no_transition_twice(image)
