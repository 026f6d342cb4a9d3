"""`manage.py check_integrity`: silent and 0 when the invariant holds, every violation listed
and exit status 1 when it does not."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from notifications.models import Notification
from tests.faults.helpers import data_url, integrity_problems, run_pipeline
from tests.photos import photo
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(post):
    response = post({"data": {"image": data_url(photo(320, 240))}})
    assert response.status_code == 202, response.content
    image = run_pipeline(Image.objects.get())
    assert image.state == State.PUBLISHED
    return image


def test_a_published_image_with_everything_in_place_passes(published):
    status, out = integrity_problems()

    assert status == 0, out
    assert out.strip() == (
        "checked 1 image(s), 1 original(s) hashed, 11 public object(s), 1 notification(s): ok"
    )


def test_a_missing_original_is_reported(published):
    storages["default"].delete(published.md5)

    status, out = integrity_problems()

    assert status == 1
    assert f"missing_original image={published.pk}" in out


def test_an_original_replaced_by_other_bytes_fails_the_checksum(published):
    storage = storages["default"]
    storage.delete(published.md5)
    storage.save(published.md5, ContentFile(b"x" * published.byte_size))

    status, out = integrity_problems()
    assert status == 1
    assert "checksum_mismatch" in out
    # Without hashing, the same size passes: that mode is for quick routine runs only.
    assert integrity_problems("--no-checksums")[0] == 0


def test_a_truncated_original_fails_the_size_check_without_hashing(published):
    storage = storages["default"]
    storage.delete(published.md5)
    storage.save(published.md5, ContentFile(b"x" * 10))

    status, out = integrity_problems("--no-checksums")
    assert status == 1
    assert "size_mismatch" in out


def test_a_missing_public_thumbnail_is_reported(published):
    key = next(k for k in published.renditions if k.endswith("_100x100"))
    storages["public"].delete(key)

    status, out = integrity_problems()
    assert status == 1
    assert f"missing_public_object image={published.pk}: published {key}" in out


def test_an_image_stuck_in_a_working_state_is_reported_as_stale(published, post, jpeg):
    post({"data": {"image": data_url(jpeg)}})
    stuck = Image.objects.exclude(pk=published.pk).get()
    long_ago = timezone.now() - timedelta(hours=2)
    Image.objects.filter(pk=stuck.pk).update(
        state=State.MODERATING, state_changed_at=long_ago, lease_until=long_ago
    )

    status, out = integrity_problems()
    assert status == 1
    assert f"stale image={stuck.pk}: moderating since" in out


def test_a_transition_applied_twice_is_reported(published):
    ImageEvent.objects.create(
        image=published,
        kind=EventKind.TRANSITION,
        from_state=State.PUBLISHING,
        to_state=State.PUBLISHED,
        actor="system:make_thumbnails",
    )

    status, out = integrity_problems()
    assert status == 1
    assert "repeated_transition" in out and "publishing -> published happened 2 times" in out


def test_a_published_image_pinster_was_never_told_about_is_reported(published):
    Notification.objects.filter(image=published).delete()

    status, out = integrity_problems()
    assert status == 1
    assert f"notification_missing image={published.pk}: no approved notice" in out


def test_a_notification_nobody_drives_is_reported_and_a_scheduled_retry_is_not(published):
    notice = Notification.objects.get(image=published)
    later = timezone.now() + timedelta(minutes=5)
    Notification.objects.filter(pk=notice.pk).update(next_attempt_at=later)
    assert integrity_problems()[0] == 0

    long_ago = timezone.now() - timedelta(hours=1)
    Notification.objects.filter(pk=notice.pk).update(next_attempt_at=long_ago, enqueued_at=long_ago)
    status, out = integrity_problems()
    assert status == 1
    assert f"notification_stuck image={published.pk}" in out


def test_a_failed_notification_needs_a_visible_reason(published):
    notice = Notification.objects.filter(image=published)
    notice.update(state=Notification.State.FAILED, failure_reason="refused by the receiver: 422")
    assert integrity_problems()[0] == 0

    notice.update(failure_reason="")
    status, out = integrity_problems()
    assert status == 1
    assert "notification_failed_silently" in out


def test_orphaned_originals_are_found_on_request(published):
    orphan = hashlib.md5(b"orphan").hexdigest()
    storages["default"].save(orphan, ContentFile(b"orphan"))
    assert integrity_problems()[0] == 0  # young: may be an upload in flight

    status, out = integrity_problems("--orphans")
    assert status == 0  # still younger than STALE_AFTER_SECONDS

    from django.test import override_settings

    with override_settings(STALE_AFTER_SECONDS=-60):
        status, out = integrity_problems("--orphans")
    assert status == 1
    assert f"orphaned_original image=-: {orphan} has no row" in out
    assert published.md5 not in out


def test_public_objects_of_bytes_no_image_shows_are_found_on_request(published, moderator):
    from django.test import override_settings

    with override_settings(STALE_AFTER_SECONDS=-60):
        first = integrity_problems("--orphans")
        assert "unpublished_public_object" not in first[1], first[1]  # published: they belong
        leftover = f"{'e' * 32}_400x400"
        storages["public"].save(leftover, ContentFile(b"thumbnail of nothing"))
        # Taken down without its objects removed (say unpublish_image never ran):
        Image.objects.filter(pk=published.pk).update(state=State.TAKEN_DOWN)

        status, out = integrity_problems("--orphans")

    assert status == 1
    assert f"unpublished_public_object image=-: public {leftover}: not published" in out
    assert f"public {published.md5}: not published" in out
    assert f"public {published.md5}_400x400: not published" in out


def test_since_limits_the_check_to_recent_images(published):
    storages["default"].delete(published.md5)
    Image.objects.filter(pk=published.pk).update(created_at=timezone.now() - timedelta(days=3))

    assert integrity_problems("--since", "1d")[0] == 0
    assert integrity_problems("--since", "7d")[0] == 1


@pytest.mark.slow
def test_a_large_table_is_read_in_batches(published, django_assert_max_num_queries):
    """1,000 rows in batches of 100: about a dozen queries, not one (or more) per row."""
    fields = {
        f.name: getattr(published, f.name)
        for f in Image._meta.concrete_fields
        if f.name not in {"id", "imageable_id", "decided_by"}
    }
    fields["state"] = State.IN_REVIEW
    Image.objects.bulk_create(Image(**fields, imageable_id=str(uuid.uuid4())) for _ in range(1_000))
    with django_assert_max_num_queries(25):
        status, out = integrity_problems("--batch-size", "100", "--no-checksums")
    assert status == 0, out
    assert "checked 1001 image(s)" in out
