"""manage.py remoderate: what a new policy would change, and --apply only where it is safe."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from moderation.backends import TestBackend
from moderation.models import BlockedImage, ModerationResult, Trigger
from tests.photos import photo
from uploads.models import Image, State

pytestmark = pytest.mark.django_db


def remoderate(*args: str) -> str:
    out = io.StringIO()
    call_command("remoderate", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def waiting(make_image):
    """Three images in review: one the policy now approves, one it rejects, one it keeps."""
    passes = make_image(photo(320, 240, subject="rocket"), state=State.IN_REVIEW)
    explicit = photo(320, 240, subject="coffee")
    TestBackend.answer(explicit, ("Explicit Nudity", 99.5))
    fails = make_image(explicit, state=State.IN_REVIEW)
    unsure = photo(320, 240, subject="chelsea")
    TestBackend.answer(unsure, ("Alcohol", 99.5))
    stays = make_image(unsure, state=State.IN_REVIEW)
    return passes, fails, stays


def test_a_dry_run_reports_the_changes_and_changes_nothing(waiting):
    passes, fails, stays = waiting

    out = remoderate()

    assert f"{passes.pk}  in_review -> approved  would approve" in out
    assert f"{fails.pk}  in_review -> rejected  would reject  (Explicit Nudity 99.5%" in out
    assert f"{stays.pk}  in_review -> in_review  unchanged" in out
    assert out.endswith("dry run: 1 unchanged, 1 would approve, 1 would reject\n")
    assert set(Image.objects.values_list("state", flat=True)) == {State.IN_REVIEW}
    assert not ModerationResult.objects.exists()


def test_apply_decides_the_images_in_review_as_the_named_moderator(waiting, moderator):
    passes, fails, stays = waiting

    out = remoderate("--apply", "--user", moderator.username)

    assert out.endswith("applied: 1 approved, 1 rejected, 1 unchanged\n")
    passes.refresh_from_db()
    fails.refresh_from_db()
    stays.refresh_from_db()
    assert (passes.state, passes.decided_by) == (State.APPROVED, moderator)
    assert passes.decision_reason.startswith("remoderate: no label")
    assert fails.state == State.REJECTED
    assert BlockedImage.objects.get().source_image == fails
    assert stays.state == State.IN_REVIEW
    assert ModerationResult.objects.filter(trigger=Trigger.REMODERATE).count() == 3


def test_a_rejected_image_the_policy_now_passes_is_reported_not_reapproved(make_image, moderator):
    image = make_image(photo(320, 240, subject="motorcycle"), state=State.IN_REVIEW)
    image.reject(by=moderator, reason="spam")

    out = remoderate("--state", "rejected", "--apply", "--user", moderator.username)

    assert "rejected -> approved  needs a moderator: rejected, the policy now says approved" in out
    image.refresh_from_db()
    assert image.state == State.REJECTED


def test_a_published_image_the_policy_now_rejects_is_reported_for_a_human(make_image):
    data = photo(320, 240, subject="astronaut")
    image = make_image(data, state=State.PUBLISHED)
    TestBackend.answer(data, ("Explicit Nudity", 99.9))

    out = remoderate("--state", "published")

    assert f"{image.pk}  published -> rejected  needs a moderator" in out
    image.refresh_from_db()
    assert image.state == State.PUBLISHED


def test_images_in_the_pipeline_are_left_to_it(make_image):
    image = make_image(photo(320, 240, subject="coffee", quality=70), state=State.MODERATING)

    out = remoderate("--ids", str(image.pk))

    assert f"{image.pk}  moderating  skipped: being moderated by the pipeline" in out
    assert TestBackend.calls == []


def test_filters_choose_the_images(make_image, waiting):
    passes, fails, stays = waiting
    old = make_image(photo(320, 240, subject="rocket", quality=70), state=State.IN_REVIEW)
    Image.objects.filter(pk=old.pk).update(created_at="2020-01-01T00:00:00Z")

    assert str(old.pk) not in remoderate("--since", "2024-01-01")
    assert str(old.pk) in remoderate("--since", "2019-12-31")
    only = remoderate("--ids", f"{passes.pk},{stays.pk}")
    assert str(passes.pk) in only and str(stays.pk) in only and str(fails.pk) not in only


def test_an_error_on_one_image_is_reported_and_the_run_goes_on(waiting):
    passes, fails, _ = waiting
    TestBackend.fail(passes.sha256, ConnectionError("throttled"))

    out = remoderate()

    assert f"{passes.pk}  in_review  error: ConnectionError: throttled" in out
    assert f"{fails.pk}  in_review -> rejected" in out


def test_apply_without_a_moderator_is_refused(waiting):
    User.objects.create_user("intern", is_staff=True)

    with pytest.raises(CommandError, match="--apply needs --user"):
        remoderate("--apply")
    with pytest.raises(CommandError, match="'intern' is not an active user who may moderate"):
        remoderate("--apply", "--user", "intern")
