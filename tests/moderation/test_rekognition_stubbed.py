"""RekognitionBackend with botocore's Stubber: the request we build and the response shapes we
read (taxonomy v6 and v7, ContentTypes), and bytes normalised to Rekognition's limits."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from PIL import Image as PILImage

from moderation.backends import (
    Original,
    RekognitionBackend,
    UnmoderatableImage,
    normalise_for_rekognition,
)
from moderation.models import ModerationResult
from moderation.services import moderate
from tests.photos import flat, photo
from uploads.models import State

pytestmark = pytest.mark.django_db

V7_RESPONSE = {
    "ModerationLabels": [
        {"Confidence": 99.1, "Name": "Explicit", "ParentName": "", "TaxonomyLevel": 1},
        {
            "Confidence": 99.1,
            "Name": "Explicit Nudity",
            "ParentName": "Explicit",
            "TaxonomyLevel": 2,
        },
        {
            "Confidence": 99.0,
            "Name": "Exposed Female Nipple",
            "ParentName": "Explicit Nudity",
            "TaxonomyLevel": 3,
        },
    ],
    "ModerationModelVersion": "7.0",
    "ContentTypes": [{"Confidence": 88.2, "Name": "Animated"}],
}


@pytest.fixture
def stubbed():
    """A backend whose client is stubbed; the stubber fails the test on unexpected calls."""
    backend = RekognitionBackend()
    with Stubber(backend.client) as stubber:
        yield backend, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def local_storage(settings, tmp_path):
    """Originals on local disk instead of S3: Rekognition must be sent the bytes."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "raw")},
        },
    }


def sent_image(params):
    with PILImage.open(io.BytesIO(params["Image"]["Bytes"])) as img:
        img.load()
        return img


def capture(backend):
    calls = []
    backend.client.meta.events.register(
        "provide-client-params.rekognition.DetectModerationLabels",
        lambda params, **_: calls.append(params),
    )
    return calls


def test_a_v7_response_is_recorded_with_its_levels_and_rejected_via_the_top_category(
    stubbed, make_image, settings
):
    backend, stubber = stubbed
    settings.MODERATION_POLICY = '{"reject": {"Explicit Nudity": null}}'
    image = make_image(photo(640, 480, subject="chelsea"))
    expected = {
        "Image": {"S3Object": {"Bucket": settings.BUCKET_NAME, "Name": f"raw/{image.md5}"}},
        "MinConfidence": 40.0,
    }
    stubber.add_response("detect_moderation_labels", V7_RESPONSE, expected)

    decision = moderate(image, backend=backend)

    assert decision.outcome == State.REJECTED
    assert "rule 'Explicit'" in decision.reason
    result = ModerationResult.objects.get(image=image)
    assert [(x["name"], x["parent"]) for x in result.labels] == [
        ("Explicit", ""),
        ("Explicit Nudity", "Explicit"),
        ("Exposed Female Nipple", "Explicit Nudity"),
    ]
    assert result.raw["ContentTypes"] == [{"Confidence": 88.2, "Name": "Animated"}]
    assert result.model_version == "rekognition 7.0"


def test_a_v6_response_without_parent_names_or_labels_approves(stubbed, make_image):
    backend, stubber = stubbed
    stubber.add_response(
        "detect_moderation_labels",
        {"ModerationLabels": [], "ModerationModelVersion": "6.1"},
        {"Image": ANY, "MinConfidence": ANY},
    )
    image = make_image(photo(640, 480, subject="rocket"))

    assert moderate(image, backend=backend).outcome == State.APPROVED
    assert ModerationResult.objects.get(image=image).model_version == "rekognition 6.1"


def test_an_original_on_local_disk_is_sent_as_its_own_bytes(local_storage, stubbed, make_image):
    backend, stubber = stubbed
    data = photo(640, 480, subject="coffee")
    stubber.add_response(
        "detect_moderation_labels",
        {"ModerationLabels": [], "ModerationModelVersion": "7.0"},
        {"Image": {"Bytes": data}, "MinConfidence": 40.0},
    )
    image = make_image(data)

    assert moderate(image, backend=backend).outcome == State.APPROVED


def test_a_tiny_png_is_enlarged_to_rekognitions_minimum_and_sent_as_jpeg(
    local_storage, stubbed, make_image
):
    backend, stubber = stubbed
    calls = capture(backend)
    stubber.add_response(
        "detect_moderation_labels",
        {"ModerationLabels": [], "ModerationModelVersion": "7.0"},
        {"Image": ANY, "MinConfidence": ANY},
    )
    image = make_image(flat("teal", (64, 48), fmt="PNG"))

    moderate(image, backend=backend)

    sent = sent_image(calls[0])
    assert (sent.format, min(sent.size)) == ("JPEG", 80)
    assert sent.size == (107, 80)


@pytest.mark.slow
def test_a_photo_over_five_megabytes_is_reencoded_below_the_limit(local_storage, make_image):
    data = photo(4000, 3000, quality=97)
    assert len(data) > 5 * 1024 * 1024
    image = make_image(data)

    normalised = normalise_for_rekognition(Original(image))

    assert len(normalised) <= 5 * 1024 * 1024
    with PILImage.open(io.BytesIO(normalised)) as img:
        assert (img.format, img.size) == ("JPEG", (4000, 3000))


def test_a_rotated_photo_is_sent_upright(local_storage, make_image):
    image = make_image(photo(640, 480, orientation=6, fmt="PNG", subject="chelsea"))

    with PILImage.open(io.BytesIO(normalise_for_rekognition(Original(image)))) as img:
        assert img.size == (640, 480)
        assert img.getexif().get(0x0112) is None


def test_an_image_rekognition_still_refuses_after_normalising_is_unmoderatable(
    local_storage, stubbed, make_image
):
    backend, stubber = stubbed
    for _ in range(2):
        stubber.add_client_error(
            "detect_moderation_labels", "ImageTooLargeException", "Image size is too large"
        )
    image = make_image(photo(640, 480, subject="astronaut", quality=70))

    with pytest.raises(UnmoderatableImage, match="ImageTooLargeException"):
        backend.detect(Original(image), min_confidence=50)


def test_an_access_error_is_not_mistaken_for_a_bad_image(stubbed, make_image):
    """A configuration problem is retried and then reviewed by a human, like any outage."""
    backend, stubber = stubbed
    stubber.add_client_error(
        "detect_moderation_labels", "AccessDeniedException", http_status_code=403
    )
    image = make_image(photo(640, 480, subject="motorcycle", quality=70))

    with pytest.raises(ClientError, match="AccessDeniedException"):
        moderate(image, backend=backend)
