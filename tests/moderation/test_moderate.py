"""moderate(): the backend's labels through the policy, stored as a read-only result."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from moderation.backends import LocalModelBackend, TestBackend, UnmoderatableImage
from moderation.models import ModerationResult
from moderation.services import moderate
from tests.photos import photo
from uploads.models import State

pytestmark = pytest.mark.django_db


def test_an_image_no_rule_objects_to_is_approved_and_the_result_is_stored(make_image):
    image = make_image(photo(640, 480))

    decision = moderate(image)

    assert decision.outcome == State.APPROVED
    result = ModerationResult.objects.get(image=image)
    assert result.outcome == State.APPROVED
    assert result.backend == "moderation.backends.TestBackend"
    assert result.model_version == "test"
    assert result.labels == []
    assert result.policy["reject"]["Explicit Nudity"] == 99
    assert result.error == ""
    assert decision.details["result_id"] == result.pk
    json.dumps(decision.details)


def test_explicit_content_at_high_confidence_is_rejected(make_image):
    data = photo(640, 480, subject="coffee")
    TestBackend.answer(
        data, ("Explicit Nudity", 99.4), ("Graphic Female Nudity", 99.2, "Explicit Nudity")
    )
    image = make_image(data)

    decision = moderate(image)

    assert decision.outcome == State.REJECTED
    assert "Explicit Nudity 99.4% >= reject threshold 99" in decision.reason
    result = ModerationResult.objects.get(image=image)
    assert result.labels == [
        {"name": "Explicit Nudity", "parent": "", "confidence": 99.4},
        {"name": "Graphic Female Nudity", "parent": "Explicit Nudity", "confidence": 99.2},
    ]
    assert result.outcome == State.REJECTED


def test_explicit_content_the_machine_is_unsure_of_goes_to_review(make_image):
    data = photo(640, 480, subject="chelsea")
    TestBackend.answer(data, ("Exposed Buttocks or Anus", 86.0, "Explicit Nudity"))
    image = make_image(data)

    decision = moderate(image)

    assert decision.outcome == State.IN_REVIEW
    assert "rule 'Explicit Nudity'" in decision.reason


def test_any_other_label_the_old_service_rejected_now_goes_to_review(make_image):
    data = photo(640, 480, subject="rocket")
    TestBackend.answer(data, ("Alcoholic Beverages", 99.6, "Alcohol"), ("Alcohol", 99.6))
    image = make_image(data)

    assert moderate(image).outcome == State.IN_REVIEW


def test_a_label_below_every_threshold_is_recorded_but_approved(make_image):
    data = photo(640, 480, subject="motorcycle")
    TestBackend.answer(data, ("Swimwear or Underwear", 72.0))
    image = make_image(data)

    assert moderate(image).outcome == State.APPROVED
    assert ModerationResult.objects.get(image=image).labels[0]["name"] == "Swimwear or Underwear"


def test_a_transient_error_is_stored_and_raised_for_the_actor_to_retry(make_image):
    data = photo(640, 480, subject="coffee", quality=80)
    TestBackend.fail(data, ConnectionError("throttled"))
    image = make_image(data)

    with pytest.raises(ConnectionError):
        moderate(image)

    result = ModerationResult.objects.get(image=image)
    assert result.outcome == ""
    assert result.error == "ConnectionError: throttled"


def test_a_permanent_error_sends_the_image_to_review_without_raising(make_image):
    data = photo(640, 480, subject="rocket", quality=80)
    TestBackend.fail(data, UnmoderatableImage("Rekognition InvalidImageFormatException"))
    image = make_image(data)

    decision = moderate(image)

    assert decision.outcome == State.IN_REVIEW
    assert "InvalidImageFormatException" in decision.reason
    result = ModerationResult.objects.get(image=image)
    assert result.outcome == State.IN_REVIEW
    assert result.error == "Rekognition InvalidImageFormatException"


def test_an_operator_policy_changes_the_outcome_and_is_recorded(make_image, settings):
    settings.MODERATION_POLICY = '{"reject": {"*": 99}}'  # the old service's behaviour
    data = photo(640, 480, subject="chelsea", quality=80)
    TestBackend.answer(data, ("Alcohol", 99.5))
    image = make_image(data)

    assert moderate(image).outcome == State.REJECTED
    assert ModerationResult.objects.get(image=image).policy["reject"]["*"] == 99


def test_a_dry_run_stores_nothing(make_image):
    image = make_image(photo(640, 480, subject="motorcycle", quality=80))

    decision = moderate(image, record=False)

    assert decision.outcome == State.APPROVED
    assert not ModerationResult.objects.exists()


def test_an_original_missing_from_storage_is_retried_not_judged(make_image):
    image = make_image(photo(640, 480, subject="astronaut", quality=80))
    storages["default"].delete(image.md5)

    with pytest.raises(FileNotFoundError):
        moderate(image)

    assert ModerationResult.objects.get(image=image).error.startswith("FileNotFoundError")


def test_bytes_no_decoder_can_read_go_to_review(make_image):
    image = make_image(photo(640, 480, subject="chelsea", quality=80))
    storages["default"].delete(image.md5)
    storages["default"].save(image.md5, ContentFile(b"\xff\xd8\xff\xe0 not a jpeg at all"))

    decision = moderate(image, backend=LocalModelBackend())

    assert decision.outcome == State.IN_REVIEW
    assert decision.reason.startswith("not moderated automatically: cannot decode the original")
