"""Services outside our reach misbehaving, through real HTTP on loopback: Rekognition throttling,
failing or timing out (tests/moderation/fake_rekognition.py), and PinsterApi slow, failing,
refusing connections or refusing the notice (tests/pinster.py). The image is approved only after
a real verdict, otherwise it waits for a human; PinsterApi is told exactly one event id, and a
notice that cannot be delivered fails visibly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from moderation.backends import load_backend
from moderation.models import ModerationResult
from moderation.tasks import moderate_image
from notifications.models import Notification
from notifications.tasks import notify_pinster
from tests.faults.helpers import assert_integrity, data_url, deliver, run_pipeline, transitions
from tests.moderation.fake_rekognition import FakeRekognition, fake_rekognition
from tests.photos import photo
from tests.pinster import PinsterApi, Reply
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db


@pytest.fixture
def rekognition() -> Iterator[FakeRekognition]:
    with (
        fake_rekognition(s3_endpoint=settings.AWS_S3_ENDPOINT_URL) as fake,
        override_settings(
            MODERATION_BACKEND="moderation.backends.RekognitionBackend",
            REKOGNITION_ENDPOINT_URL=fake.url,
            REKOGNITION_MAX_ATTEMPTS=1,  # each delivery is one call: Dramatiq's retries count
            # Room for an answer on a loaded machine; a timed-out call is one that "hang"s.
            REKOGNITION_TIMEOUT_SECONDS=2,
        ),
    ):
        load_backend.cache_clear()
        yield fake
    load_backend.cache_clear()


def upload(post) -> Image:
    assert post({"data": {"image": data_url(photo(640, 480))}}).status_code == 202
    return Image.objects.get()


@pytest.mark.parametrize(
    "script", [["throttle", "ok"], ["500", "throttle", "503", "ok"], ["hang", "ok"]]
)
def test_rekognition_failing_for_a_while_then_answering_approves_on_its_verdict(
    rekognition, post, script
):
    rekognition.script = list(script)
    image = upload(post)

    errors = deliver(moderate_image, str(image.pk))

    image.refresh_from_db()
    assert image.state == State.APPROVED
    assert len(errors) == len(script) - 1
    verdict = ModerationResult.objects.get(image=image, error="")
    assert verdict.model_version == "rekognition 7.0"
    assert ModerationResult.objects.filter(image=image).exclude(error="").count() == len(errors)
    assert transitions(image).count((State.MODERATING, State.APPROVED)) == 1
    assert_integrity()


@pytest.mark.parametrize("reply", ["throttle", "500", pytest.param("hang", marks=pytest.mark.slow)])
def test_rekognition_never_answering_leaves_the_image_to_a_human(rekognition, post, reply):
    rekognition.script = [reply]
    image = upload(post)

    deliver(moderate_image, str(image.pk), attempts=settings.MAX_STAGE_ATTEMPTS + 2)

    image.refresh_from_db()
    assert image.state == State.IN_REVIEW
    assert image.failure_reason
    assert not ModerationResult.objects.filter(image=image, error="").exists()
    assert (State.MODERATING, State.APPROVED) not in transitions(image)
    assert len(rekognition.requests) == settings.MAX_STAGE_ATTEMPTS
    assert_integrity()


# --- PinsterApi ---------------------------------------------------------------------------


@pytest.fixture
def pinster() -> Iterator[PinsterApi]:
    with (
        PinsterApi() as server,
        override_settings(
            PINSTER_API_URL=server.url,
            REJECTION_NOTIFY_URL=server.rejections_url,
            # Room for an answer on a loaded machine; "slow" below never answers in time.
            NOTIFY_CONNECT_TIMEOUT=2,
            NOTIFY_TOTAL_TIMEOUT=3,
        ),
    ):
        yield server


def published_notice(post) -> Notification:
    image = run_pipeline(upload(post))
    assert image.state == State.PUBLISHED
    return Notification.objects.get(image=image)


def attempt(notice: Notification) -> Notification:
    """One delivery, once it is due (the retry schedule's wait is skipped, not shortened)."""
    Notification.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    notify_pinster(str(notice.pk))
    notice.refresh_from_db()
    return notice


@pytest.mark.parametrize(
    "trouble",
    [
        [Reply(201, delay=600)],  # far past our timeout (the stand-in stops waiting on close)
        [Reply(500), Reply(503, retry_after="120"), Reply(502)],  # failing
        "refusing",  # the port is closed
    ],
    ids=["slow", "failing", "refusing connections"],
)
def test_pinster_in_trouble_is_told_once_it_recovers(pinster, post, trouble):
    notice = published_notice(post)
    if trouble == "refusing":
        pinster.stop()
        failures = 1
    else:
        pinster.answer(*trouble)
        failures = len(trouble)

    for _ in range(failures):
        assert attempt(notice).state == Notification.State.PENDING
        assert notice.failure_reason
    if trouble == "refusing":
        pinster.start()
    notice = attempt(notice)

    assert notice.state == Notification.State.DELIVERED
    assert notice.attempts == failures + 1
    assert {r.event_id for r in pinster.requests()} == {notice.event_id}
    assert attempt(notice).attempts == failures + 1  # delivered: a late message does nothing
    assert_integrity()


def test_a_notice_pinster_refuses_fails_visibly(pinster, post):
    notice = published_notice(post)
    pinster.answer(422)

    notice = attempt(notice)

    assert notice.state == Notification.State.FAILED
    assert "refused" in notice.failure_reason
    assert ImageEvent.objects.filter(image=notice.image, kind=EventKind.NOTIFICATION).exists()
    assert_integrity()
