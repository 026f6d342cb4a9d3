"""RekognitionBackend against a fake Rekognition on loopback: botocore's real retries and
timeouts, and the S3Object path against the S3-compatible server the test settings start.

No test races the clock: the client's timeout is generous wherever only the answer matters, and
a timed-out call is one the fake never answers ("hang"), not one it answers a little late."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from django.conf import settings as django_settings
from PIL import Image as PILImage

from moderation.backends import RekognitionBackend
from moderation.models import ModerationResult
from moderation.services import moderate
from moderation.tasks import moderate_image
from tests.moderation.fake_rekognition import fake_rekognition
from tests.photos import animated, photo
from uploads.models import Image, State

pytestmark = pytest.mark.django_db

EXPLICIT = [
    {"Name": "Explicit Nudity", "ParentName": "", "Confidence": 99.6, "TaxonomyLevel": 1},
    {
        "Name": "Graphic Male Nudity",
        "ParentName": "Explicit Nudity",
        "Confidence": 99.3,
        "TaxonomyLevel": 2,
    },
]


@pytest.fixture
def rekognition(settings):
    """A fake endpoint and a fresh backend pointed at it (3 attempts, 30 s timeouts: an answer
    is never late, however loaded the machine)."""
    with fake_rekognition(s3_endpoint=django_settings.AWS_S3_ENDPOINT_URL) as fake:
        settings.REKOGNITION_ENDPOINT_URL = fake.url
        settings.REKOGNITION_MAX_ATTEMPTS = 3
        settings.REKOGNITION_TIMEOUT_SECONDS = 30
        yield fake, RekognitionBackend()


def with_timeout(settings, seconds: float) -> RekognitionBackend:
    """A backend whose calls give up after `seconds` (the backend reads it when built)."""
    settings.REKOGNITION_TIMEOUT_SECONDS = seconds
    return RekognitionBackend()


def test_the_s3_object_is_passed_and_rekognition_reads_the_original_from_the_bucket(
    rekognition, make_image
):
    fake, backend = rekognition
    data = photo(800, 600, subject="chelsea")
    image = make_image(data)

    decision = moderate(image, backend=backend)

    assert decision.outcome == State.APPROVED
    assert fake.requests[0]["Image"] == {
        "S3Object": {"Bucket": django_settings.BUCKET_NAME, "Name": f"raw/{image.md5}"}
    }
    assert fake.s3_reads == [data]
    result = ModerationResult.objects.get(image=image)
    assert result.model_version == "rekognition 7.0"
    assert result.raw["sent"] == f"s3://{django_settings.BUCKET_NAME}/raw/{image.md5}"


def test_labels_are_recorded_with_their_parents_and_the_policy_rejects_explicit_content(
    rekognition, make_image
):
    fake, backend = rekognition
    fake.labels = EXPLICIT
    image = make_image(photo(800, 600, subject="coffee"))

    decision = moderate(image, backend=backend)

    assert decision.outcome == State.REJECTED
    assert ModerationResult.objects.get(image=image).labels == [
        {"name": "Explicit Nudity", "parent": "", "confidence": 99.6},
        {"name": "Graphic Male Nudity", "parent": "Explicit Nudity", "confidence": 99.3},
    ]
    assert fake.requests[0]["MinConfidence"] == 40.0


def test_throttling_is_retried_by_botocore_until_rekognition_answers(rekognition, make_image):
    fake, backend = rekognition
    fake.script = ["throttle", "throttle", "ok"]
    image = make_image(photo(800, 600, subject="rocket"))

    assert moderate(image, backend=backend).outcome == State.APPROVED
    assert len(fake.requests) == 3


def test_server_errors_that_outlast_botocores_retries_raise_for_the_actor(rekognition, make_image):
    fake, backend = rekognition
    fake.script = ["500"]
    image = make_image(photo(800, 600, subject="motorcycle"))

    with pytest.raises(ClientError, match="InternalServerError"):
        moderate(image, backend=backend)

    assert len(fake.requests) == 3
    assert "(reached max retries: 2)" in ModerationResult.objects.get(image=image).error


def test_a_call_rekognition_never_answers_is_timed_out_retried_and_then_raised(
    rekognition, make_image, settings
):
    fake, _ = rekognition
    fake.script = ["hang"]
    backend = with_timeout(settings, 0.5)
    image = make_image(photo(800, 600, subject="astronaut", quality=85))

    with pytest.raises(ReadTimeoutError):
        moderate(image, backend=backend)  # returns at all only because the timeout works

    assert len(fake.requests) == 3


@pytest.mark.slow
def test_an_answer_after_one_timed_out_call_still_moderates(rekognition, make_image, settings):
    fake, _ = rekognition
    fake.script = ["hang", "ok"]
    backend = with_timeout(settings, 5)  # the answer has 5 s; the hung call costs them once
    image = make_image(photo(800, 600, subject="coffee", quality=85))

    assert moderate(image, backend=backend).outcome == State.APPROVED
    assert len(fake.requests) == 2


def test_an_image_rekognition_calls_invalid_is_resent_once_normalised_then_reviewed(
    rekognition, make_image
):
    fake, backend = rekognition
    fake.script = ["InvalidImageFormatException"]
    image = make_image(photo(800, 600, subject="chelsea", quality=85))

    decision = moderate(image, backend=backend)

    assert decision.outcome == State.IN_REVIEW
    assert "InvalidImageFormatException" in decision.reason
    assert len(fake.requests) == 2  # never retried by botocore: not transient
    assert "S3Object" in fake.requests[0]["Image"]
    assert fake.sent_bytes(1)[:3] == b"\xff\xd8\xff"


def test_an_unreadable_s3_object_falls_back_to_sending_bytes(rekognition, make_image):
    fake, backend = rekognition
    fake.script = ["InvalidS3ObjectException", "ok"]
    image = make_image(photo(800, 600, subject="rocket", quality=85))

    assert moderate(image, backend=backend).outcome == State.APPROVED
    with PILImage.open(io.BytesIO(fake.sent_bytes(1))) as sent:
        assert (sent.format, sent.size) == ("JPEG", (800, 600))


def test_a_format_rekognition_does_not_take_is_sent_as_its_first_frame_in_jpeg(
    rekognition, make_image
):
    fake, backend = rekognition
    image = make_image(animated("GIF", frames=3, size=(200, 150)))

    assert moderate(image, backend=backend).outcome == State.APPROVED
    assert "Bytes" in fake.requests[0]["Image"]
    with PILImage.open(io.BytesIO(fake.sent_bytes(0))) as sent:
        assert (sent.format, sent.size, getattr(sent, "n_frames", 1)) == ("JPEG", (200, 150), 1)


def test_the_actor_sends_the_image_to_review_once_its_attempts_are_exhausted(
    rekognition, make_image, settings
):
    """Fail closed: Rekognition never recovers, so a human decides; it is never approved."""
    fake, _ = rekognition
    fake.script = ["503"]
    settings.MODERATION_BACKEND = "moderation.backends.RekognitionBackend"
    settings.MAX_STAGE_ATTEMPTS = 2
    settings.REKOGNITION_MAX_ATTEMPTS = 1
    image = make_image(photo(800, 600, subject="motorcycle", quality=85), state=State.RECEIVED)

    with pytest.raises(ClientError):
        moderate_image(str(image.pk))  # attempt 1 fails: released for Dramatiq to retry
    moderate_image(str(image.pk))  # attempt 2 fails too: the last one, so it gives up

    image.refresh_from_db()
    assert image.state == State.IN_REVIEW
    assert image.failure_reason.startswith("InternalServerError")
    last = image.events.last()
    assert (last.from_state, last.to_state) == (State.MODERATING, State.IN_REVIEW)
    assert ModerationResult.objects.filter(image=image).count() == 2
    assert not Image.objects.filter(state=State.APPROVED).exists()
