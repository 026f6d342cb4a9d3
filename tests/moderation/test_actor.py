"""moderate_image end to end: the stub broker and a real worker, retries counted in the
database, rejections blocklisted, and nothing approved by accident."""

from __future__ import annotations

import time

import pytest

from moderation.backends import TestBackend, UnmoderatableImage
from moderation.models import BlockedImage, ModerationResult
from moderation.tasks import moderate_image
from tests.photos import photo
from uploads.models import EventKind, Image, State

pytestmark = pytest.mark.django_db(transaction=True)
QUICK_RETRIES = {"min_backoff": 10, "max_backoff": 50}


def send(image: Image) -> None:
    moderate_image.send_with_options(args=(str(image.pk),), **QUICK_RETRIES)


def wait_for(image: Image, states: set[State], timeout: float = 60.0) -> Image:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image.refresh_from_db()
        if image.state in states:
            return image
        time.sleep(0.05)
    raise AssertionError(f"image stuck in {image.state}")


def test_a_safe_image_is_approved_and_handed_to_publishing(make_image, broker, stub_worker):
    image = make_image(photo(640, 480, subject="chelsea"), state=State.RECEIVED)

    send(image)
    image = wait_for(image, {State.PUBLISHED, State.FAILED, State.IN_REVIEW})

    assert image.state == State.PUBLISHED
    result = ModerationResult.objects.get(image=image)
    event = image.events.get(to_state=State.APPROVED)
    assert event.actor == "system:moderate_image"
    assert event.details["result_id"] == result.pk


def test_a_rejected_image_is_blocklisted_and_its_copy_is_held_for_review(
    make_image, broker, stub_worker
):
    data = photo(640, 480, subject="coffee")
    TestBackend.answer(data, ("Explicit Nudity", 99.7))
    image = make_image(data, state=State.RECEIVED)

    send(image)
    image = wait_for(image, {State.REJECTED, State.APPROVED, State.PUBLISHED})

    assert image.state == State.REJECTED
    entry = BlockedImage.objects.get()
    assert (entry.sha256, entry.source_image_id) == (image.sha256, image.pk)
    assert entry.reason.startswith("Explicit Nudity 99.7%")

    copy = photo(320, 240, subject="coffee", quality=60)
    again = make_image(copy, state=State.RECEIVED)
    send(again)
    again = wait_for(again, {State.IN_REVIEW, State.APPROVED, State.PUBLISHED})

    assert again.state == State.IN_REVIEW
    assert again.decision_reason.startswith(f"blocklisted: 0 bits from blocked image #{entry.pk}")
    assert ModerationResult.objects.get(image=again).blocked_image == entry


def test_a_transient_error_is_retried_and_the_image_then_approved(make_image, broker, stub_worker):
    data = photo(640, 480, subject="rocket")
    TestBackend.fail(data, ConnectionError("Rekognition throttled"), times=2)
    image = make_image(data, state=State.RECEIVED)

    send(image)
    image = wait_for(image, {State.PUBLISHED, State.IN_REVIEW, State.FAILED})

    assert image.state == State.PUBLISHED
    failures = image.events.filter(kind=EventKind.ATTEMPT_FAILED).values_list("reason", flat=True)
    assert list(failures) == ["ConnectionError: Rekognition throttled"] * 2
    assert [r.outcome for r in ModerationResult.objects.filter(image=image)] == [
        State.APPROVED,
        "",
        "",
    ]


def test_errors_that_never_stop_send_the_image_to_review_not_to_approval(
    make_image, broker, stub_worker, settings
):
    settings.MAX_STAGE_ATTEMPTS = 3
    data = photo(640, 480, subject="motorcycle")
    TestBackend.fail(data, TimeoutError("read timed out"))
    image = make_image(data, state=State.RECEIVED)

    send(image)
    image = wait_for(image, {State.IN_REVIEW, State.APPROVED, State.PUBLISHED})
    broker.join("moderation", fail_fast=False)

    assert image.state == State.IN_REVIEW
    assert image.failure_reason == "TimeoutError: read timed out"
    assert TestBackend.calls.count(image.sha256) == 3
    assert not image.events.filter(to_state=State.APPROVED).exists()


def test_an_image_the_backend_can_never_judge_goes_straight_to_review(
    make_image, broker, stub_worker
):
    data = photo(640, 480, subject="astronaut", quality=70)
    TestBackend.fail(data, UnmoderatableImage("Rekognition InvalidImageFormatException"))
    image = make_image(data, state=State.RECEIVED)

    send(image)
    image = wait_for(image, {State.IN_REVIEW, State.APPROVED, State.PUBLISHED})

    assert image.state == State.IN_REVIEW
    assert TestBackend.calls.count(image.sha256) == 1
    assert "InvalidImageFormatException" in image.decision_reason


def test_a_moderators_rejection_blocklists_the_image(make_image, moderator):
    image = make_image(photo(640, 480, subject="chelsea", quality=70), state=State.IN_REVIEW)

    assert image.reject(by=moderator, reason="hateful symbol")

    entry = BlockedImage.objects.get(sha256=image.sha256)
    assert (entry.source_image_id, entry.reason) == (image.pk, "hateful symbol")
    assert entry.added_by == moderator
    assert entry.phash is not None
