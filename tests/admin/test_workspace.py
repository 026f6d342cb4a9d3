"""The review workspace's server side: `next/` claims and renders one image with why it is here,
decisions go through the image's transitions and respect claims, auditors only look."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from moderation.models import BlockedImage, ModerationResult, ReviewClaim, ReviewerPreference
from tests.admin.conftest import client_for
from tests.photos import photo
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db
NEXT = "/admin/review/next/"


def decide_url(image: Image) -> str:
    return f"/admin/review/{image.pk}/decide/"


@pytest.fixture
def second_moderator(moderator: User) -> User:
    user = User.objects.create_user("noor", password="noor-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


def test_the_workspace_page_lists_the_keys_and_the_queue(moderator: User, make_image: Any) -> None:
    make_image(waited=timedelta(hours=3, minutes=12))
    page = client_for(moderator).get("/admin/review/").content.decode()
    assert "Review workspace | ImageService admin" in page
    assert 'id="review-queue-size">1<' in page
    assert "3h 12m" in page
    for reason in ("Nudity or sexual content", "Spam or advertising"):
        assert reason in page
    assert "<script>" not in page and "style=" not in page  # CSP: files only


def test_next_claims_the_oldest_image_and_renders_why_it_is_here(
    moderator: User, make_image: Any
) -> None:
    image = make_image(
        waited=timedelta(hours=1), name="Beach day", description="Our holiday", user_id="u-9"
    )
    make_image(state=State.REJECTED, user_id="u-9")
    make_image(waited=timedelta(minutes=5))
    body = client_for(moderator).post(NEXT).json()
    assert body["item"]["id"] == str(image.pk)
    assert body["queue"] == {"size": 2, "oldest": "1h 0m"}
    html = body["item"]["html"]
    assert "Suggestive" in html and "87.5%" in html and "flagged for review" in html
    assert "Beach day" in html and "Our holiday" in html
    assert "2 uploads: 0 approved, 1 rejected, 0 taken down" in html
    assert ReviewClaim.objects.get(image=image).moderator == moderator


def test_a_blocklist_match_shows_the_blocked_image_beside_the_upload(
    moderator: User, make_image: Any
) -> None:
    source = make_image(state=State.REJECTED)
    entry = BlockedImage.objects.create(sha256=source.sha256, source_image=source, reason="spam")
    image = make_image()
    ModerationResult.objects.filter(image=image).update(blocked_image=entry, blocklist_distance=5)
    html = client_for(moderator).post(NEXT).json()["item"]["html"]
    assert "review-compare" in html
    assert f"/admin/uploads/image/{source.pk}/preview/" in html
    assert "distance <strong>5</strong> of 64 bits" in html


def test_a_failed_moderation_shows_its_error(moderator: User, make_image: Any) -> None:
    image = make_image(with_result=False, failure_reason="moderation gave up after 3 attempts")
    ImageEvent.objects.create(
        image=image,
        kind=EventKind.ATTEMPT_FAILED,
        actor="system:moderate_image",
        reason="Rekognition: ThrottlingException",
    )
    html = client_for(moderator).post(NEXT).json()["item"]["html"]
    assert "Automatic moderation could not decide" in html
    assert "Rekognition: ThrottlingException" in html
    assert "moderation gave up after 3 attempts" in html


def test_two_moderators_are_never_handed_the_same_image(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    images = [make_image(waited=timedelta(minutes=10 - n)) for n in range(3)]
    first, second = client_for(moderator), client_for(second_moderator)
    a = first.post(NEXT).json()["item"]["id"]
    b = second.post(NEXT).json()["item"]["id"]
    c = first.post(NEXT, {"exclude": [a]}).json()["item"]["id"]
    assert len({a, b, c}) == 3 and {a, b, c} == {str(i.pk) for i in images}
    assert second.post(NEXT, {"exclude": [b]}).json()["item"] is None


def test_approving_and_rejecting_go_through_the_transitions_and_free_the_claim(
    moderator: User, make_image: Any
) -> None:
    kept, refused = make_image(), make_image(data=photo(320, 240))
    client = client_for(moderator)
    client.post(NEXT)
    assert client.post(decide_url(kept), {"action": "approve"}).json()["ok"]
    answer = client.post(
        decide_url(refused), {"action": "reject", "reason": "Spam or advertising", "note": ""}
    )
    assert answer.status_code == 200
    kept.refresh_from_db()
    refused.refresh_from_db()
    assert (kept.state, kept.decided_by) == (State.APPROVED, moderator)
    assert (refused.state, refused.decision_reason) == (State.REJECTED, "Spam or advertising")
    assert not ReviewClaim.objects.exists()


def test_a_decision_on_an_image_another_moderator_holds_is_refused(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    image = make_image()
    client_for(second_moderator).post(NEXT)
    answer = client_for(moderator).post(decide_url(image), {"action": "approve"})
    assert answer.status_code == 409
    assert answer.json()["message"] == f"Image {image.md5} is open for noor."
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW


def test_a_second_decision_on_the_same_image_changes_nothing(
    moderator: User, make_image: Any
) -> None:
    image = make_image()
    client = client_for(moderator)
    assert client.post(decide_url(image), {"action": "approve"}).status_code == 200
    again = client.post(decide_url(image), {"action": "reject", "reason": "Violence or gore"})
    assert again.status_code == 409
    assert "already approved by mod" in again.json()["message"]
    decisions = ImageEvent.objects.filter(image=image, from_state=State.IN_REVIEW)
    assert decisions.count() == 1


def test_a_rejection_needs_a_valid_reason(moderator: User, make_image: Any) -> None:
    image = make_image()
    client = client_for(moderator)
    for data in ({"action": "reject"}, {"action": "reject", "reason": "Other"}, {"action": "x"}):
        assert client.post(decide_url(image), data).status_code == 400
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW


def test_skipping_gives_the_image_back(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    image = make_image()
    client = client_for(moderator)
    client.post(NEXT)
    assert client.post("/admin/review/release/", {"id": [str(image.pk)]}).json() == {"released": 1}
    assert client_for(second_moderator).post(NEXT).json()["item"]["id"] == str(image.pk)


def test_renewing_keeps_only_the_claims_the_moderator_can_hold(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    mine, theirs = make_image(), make_image()
    client_for(second_moderator).post(NEXT)  # takes the oldest: `mine` was made first
    answer = client_for(moderator).post("/admin/review/renew/", {"id": [mine.pk, theirs.pk]})
    assert answer.json() == {"kept": [str(theirs.pk)]}


def test_auditors_look_at_the_queue_without_claiming_or_deciding(
    auditor: User, make_image: Any
) -> None:
    image = make_image()
    client = client_for(auditor)
    page = client.get("/admin/review/").content.decode()
    assert "Read only" in page and 'data-key="a"' not in page
    assert client.post(NEXT).json()["item"]["id"] == str(image.pk)
    assert not ReviewClaim.objects.exists()
    refused = client.post(decide_url(image), {"action": "approve"})
    assert refused.status_code == 403
    assert "<title>Not allowed | ImageService admin</title>" in refused.content.decode()
    image.refresh_from_db()
    assert image.state == State.IN_REVIEW


def test_flagged_previews_are_blurred_unless_the_moderator_chose_otherwise(
    moderator: User, make_image: Any, settings: Any
) -> None:
    settings.REVIEW_BLUR_CONFIDENCE = 80
    make_image(labels=[{"name": "Explicit", "parent": "", "confidence": 93.0}])
    client = client_for(moderator)
    assert "is-blurred" in client.post(NEXT).json()["item"]["html"]
    client.post("/admin/review/preferences/", {"greyscale": "on"})
    preference = ReviewerPreference.objects.get(user=moderator)
    assert (preference.blur_flagged, preference.greyscale) == (False, True)
    html = client.post(NEXT).json()["item"]["html"]
    assert "is-blurred" not in html and "is-greyscale" in html


def test_a_preview_below_the_threshold_is_not_blurred(moderator: User, make_image: Any) -> None:
    make_image(labels=[{"name": "Suggestive", "parent": "", "confidence": 60.0}])
    assert "is-blurred" not in client_for(moderator).post(NEXT).json()["item"]["html"]


def test_the_queue_list_shows_who_has_an_image_open(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    held = make_image(waited=timedelta(hours=1))
    make_image()
    client_for(second_moderator).post(NEXT)
    page = client_for(moderator).get("/admin/uploads/image/").content.decode()
    assert page.count("open for noor") == 1
    ReviewClaim.objects.filter(image=held).update(until="2000-01-01T00:00:00Z")
    assert (
        "open for noor" not in client_for(moderator).get("/admin/uploads/image/").content.decode()
    )


def test_the_image_page_says_who_has_it_open_in_the_workspace(
    moderator: User, second_moderator: User, make_image: Any
) -> None:
    image = make_image()
    client_for(second_moderator).post(NEXT)
    page = client_for(moderator).get(f"/admin/uploads/image/{image.pk}/change/").content.decode()
    assert "Open in the review workspace for noor until" in page
    own = client_for(second_moderator).get(f"/admin/uploads/image/{image.pk}/change/")
    assert "Open in the review workspace" not in own.content.decode()
