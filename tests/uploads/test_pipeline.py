"""The pipeline backbone: every accepted upload reaches a final state, exactly once."""

from __future__ import annotations

import io
import time
import uuid
from collections import Counter
from datetime import timedelta
from io import StringIO

import dramatiq
import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from PIL import Image as PILImage

from infra.storage import read_bytes
from moderation.backends import TestBackend, UnmoderatableImage
from moderation.tasks import moderate_image
from publishing.tasks import make_thumbnails
from tests import services
from tests.photos import photo
from tests.uploads.conftest import data_url
from uploads.models import MODERATION, PUBLISHING, EventKind, Image, ImageEvent, State
from uploads.pipeline import reconcile_images, run_stage, take_back_leases

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


# --- Leases, failed images, what the status API reports ----------------------------------


def fail_publishing(post, jpeg) -> str:
    """An image whose publishing failed for good (its original went missing meanwhile)."""
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    moderate_image(image_id)
    Image.objects.filter(pk=image_id).update(state=State.PUBLISHING, attempts=5, lease_until=None)
    make_thumbnails(image_id)
    assert Image.objects.get(pk=image_id).state == State.FAILED
    return image_id


@pytest.mark.django_db
def test_a_re_upload_of_a_failed_image_starts_the_stage_that_failed_again(post, jpeg, broker):
    image_id = fail_publishing(post, jpeg)
    broker.flush_all()

    response = post({"data": {"image": data_url(jpeg)}})  # the same bytes, the same pin

    assert response.status_code == 202
    assert response.json()["id"] == image_id
    assert response.json()["state"] == State.APPROVED  # back where it failed, not moderated again
    assert broker.queues["thumbnails"].qsize() == 1
    make_thumbnails(image_id)
    image = Image.objects.get(pk=image_id)
    assert image.state == State.PUBLISHED
    assert transitions(image)[-3:] == [
        ("failed", "approved"),
        ("approved", "publishing"),
        ("publishing", "published"),
    ]
    retried = image.events.get(from_state=State.FAILED)
    assert retried.actor.startswith("uploader:")
    assert retried.details["retry_of"] == "publishing"
    assert "gave up" in retried.details["failure_reason"]


@pytest.mark.django_db
def test_a_re_upload_of_a_failed_image_stores_its_missing_original_again(post, jpeg, broker):
    image_id = fail_publishing(post, jpeg)
    image = Image.objects.get(pk=image_id)
    storages["default"].delete(image.md5)

    response = post({"data": {"image": data_url(jpeg)}})

    assert response.status_code == 202
    assert response.json()["id"] == image_id
    assert read_bytes(storages["default"], image.md5) == jpeg
    make_thumbnails(image_id)
    assert Image.objects.get(pk=image_id).state == State.PUBLISHED


@pytest.mark.django_db
def test_a_failed_moderation_is_retried_from_received(
    post, jpeg, broker, django_capture_on_commit_callbacks
):
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    image = Image.objects.get(pk=image_id)
    assert image.claim(MODERATION, lease_seconds=30)
    assert image.fail(reason="moderation backend misconfigured", actor="system:test")
    broker.flush_all()

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("retry_failed", "--since", "1h", stdout=out)

    assert Image.objects.get(pk=image_id).state == State.RECEIVED
    assert broker.queues["moderation"].qsize() == 1
    assert "1 failed image(s) put back" in out.getvalue()


@pytest.mark.django_db
def test_retry_failed_takes_only_the_images_named(post, jpeg, broker):
    image_id = fail_publishing(post, jpeg)
    with pytest.raises(CommandError, match="not failed or not found"):
        call_command("retry_failed", "--image", str(uuid.uuid4()), stdout=StringIO())
    call_command("retry_failed", "--image", image_id, "--dry-run", stdout=StringIO())
    assert Image.objects.get(pk=image_id).state == State.FAILED

    call_command("retry_failed", "--image", image_id, stdout=StringIO())

    image = Image.objects.get(pk=image_id)
    assert (image.state, image.attempts, image.failure_reason) == (State.APPROVED, 0, "")
    assert image.events.get(from_state=State.FAILED).actor == "system:retry_failed"


@pytest.mark.django_db(transaction=True)
def test_a_running_task_renews_its_short_lease(post, jpeg, settings):
    settings.LEASE_SECONDS = 6
    image_id = post({"data": {"image": data_url(jpeg)}}).json()["id"]
    seen = []

    def slow_work(image: Image) -> None:
        for _ in range(2):
            seen.append(Image.objects.values_list("lease_until", flat=True).get(pk=image.pk))
            time.sleep(2.5)

    run_stage(image_id, MODERATION, slow_work)

    first, second = seen
    assert first is not None and second is not None
    assert second > first  # renewed after a third of the lease
    assert first - timezone.now() < timedelta(seconds=6)


@pytest.mark.django_db
def test_start_up_takes_back_the_leases_of_the_previous_run_only(post, jpeg):
    old = Image.objects.get(pk=post({"data": {"image": data_url(jpeg)}}).json()["id"])
    assert old.claim(MODERATION, lease_seconds=300)
    started = timezone.now()
    new = Image.objects.get(
        pk=post({"data": {"image": data_url(photo(800, 600, quality=55))}}).json()["id"]
    )
    assert new.claim(MODERATION, lease_seconds=300)

    assert take_back_leases(started) == 1

    assert Image.objects.get(pk=old.pk).lease_until is None
    assert Image.objects.get(pk=new.pk).lease_until is not None
    assert reconcile_images(quiet_for=0) == 1  # the old one, at once


@pytest.mark.django_db
def test_the_status_api_reports_the_upright_size_of_an_exif_rotated_photo(post, api):
    rotated = photo(1600, 1200, orientation=6)  # shown 1600x1200, stored 1200x1600
    with PILImage.open(io.BytesIO(rotated)) as stored:
        assert stored.size == (1200, 1600)

    body = post({"data": {"image": data_url(rotated)}}).json()

    assert (body["width"], body["height"]) == (1600, 1200)
    status = api.get(body["status_url"].split("imageservice.test")[-1]).json()
    assert (status["width"], status["height"]) == (1600, 1200)


@pytest.mark.django_db
def test_the_published_original_is_capped_to_public_original_max_side(post, settings):
    settings.PUBLIC_ORIGINAL_MAX_SIDE = 1000
    image_id = post({"data": {"image": data_url(photo(2400, 1600))}}).json()["id"]
    moderate_image(image_id)
    make_thumbnails(image_id)
    image = Image.objects.get(pk=image_id)
    assert image.state == State.PUBLISHED

    with PILImage.open(io.BytesIO(read_bytes(storages["public"], image.md5))) as published:
        assert published.size == (1000, 667)
