"""The same message delivered three times, at once or one after the other, and tasks that fail
for good: no transition ever happens twice, and nothing is approved without a verdict."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq import Message

from moderation.backends import TestBackend
from moderation.tasks import moderate_image
from publishing.tasks import make_thumbnails
from tests.faults.helpers import assert_integrity, data_url, deliver, run_pipeline, transitions
from tests.photos import photo
from uploads.models import EventKind, Image, ImageEvent, State

PIPELINE = [
    (State.RECEIVED, State.MODERATING),
    (State.MODERATING, State.APPROVED),
    (State.APPROVED, State.PUBLISHING),
    (State.PUBLISHING, State.PUBLISHED),
]


def run_queue(broker, queue: str, copies: int) -> None:
    """Take the one message waiting on `queue`, enqueue it `copies` times (same message id) and
    let a three-thread worker consume them concurrently."""
    assert broker.queues[queue].qsize() == 1
    message = Message.decode(broker.queues[queue].get())
    broker.queues[queue].task_done()
    for _ in range(copies):
        broker.enqueue(message)
    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=3, worker_timeout=50)
    worker.start()
    try:
        broker.join(queue, timeout=60_000)
        worker.join()
    finally:
        worker.stop()


@pytest.mark.django_db(transaction=True)
def test_each_message_delivered_three_times_at_once_moves_the_image_once(post, broker):
    data = photo(640, 480)
    assert post({"data": {"image": data_url(data)}}).status_code == 202
    image = Image.objects.get()

    run_queue(broker, "moderation", copies=3)
    run_queue(broker, "thumbnails", copies=3)

    image.refresh_from_db()
    assert image.state == State.PUBLISHED
    assert transitions(image) == PIPELINE
    assert TestBackend.calls == [image.sha256]  # one verdict asked for, not three
    assert not ImageEvent.objects.filter(image=image, kind=EventKind.RETRY).exists()
    broker.flush("notifications")
    assert_integrity()


@pytest.mark.django_db
def test_messages_delivered_again_after_the_work_is_done_do_nothing(post):
    assert post({"data": {"image": data_url(photo(640, 480))}}).status_code == 202
    image = run_pipeline(Image.objects.get())
    events = ImageEvent.objects.filter(image=image).count()

    for _ in range(3):
        moderate_image(str(image.pk))
        make_thumbnails(str(image.pk))

    assert ImageEvent.objects.filter(image=image).count() == events
    assert transitions(image) == PIPELINE
    assert_integrity()


@pytest.mark.django_db
def test_moderation_that_always_fails_ends_in_review_never_approved(post, settings):
    data = photo(640, 480)
    TestBackend.fail(data, RuntimeError("the moderation service is down"))
    assert post({"data": {"image": data_url(data)}}).status_code == 202
    image = Image.objects.get()

    errors = deliver(moderate_image, str(image.pk), attempts=10)

    image.refresh_from_db()
    assert image.state == State.IN_REVIEW
    assert "gave up" in image.failure_reason or "moderation service is down" in image.failure_reason
    assert len(errors) == settings.MAX_STAGE_ATTEMPTS - 1  # the last attempt gives up quietly
    assert image.attempts == 0  # reset by the move to review
    assert (State.MODERATING, State.APPROVED) not in transitions(image)
    assert list(Image.objects.awaiting_review()) == [image]
    assert_integrity()


@pytest.mark.django_db
def test_publishing_that_always_fails_ends_failed_with_a_reason(post, settings):
    assert post({"data": {"image": data_url(photo(640, 480))}}).status_code == 202
    image = Image.objects.get()
    deliver(moderate_image, str(image.pk))
    settings.THUMBNAIL_SIZES = "400x0"  # a bad deploy: the engine refuses it, every time

    deliver(make_thumbnails, str(image.pk), attempts=10)

    image.refresh_from_db()
    assert image.state == State.FAILED
    assert "ValueError" in image.failure_reason
    assert image.renditions == []
    assert not image.notifications.exists()
    assert (State.PUBLISHING, State.PUBLISHED) not in transitions(image)
    failed = ImageEvent.objects.filter(image=image, kind=EventKind.ATTEMPT_FAILED).count()
    assert failed == settings.MAX_STAGE_ATTEMPTS - 1
    assert_integrity()
