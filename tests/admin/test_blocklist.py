"""Moderators add files to the blocklist and remove entries; hashes are computed, never typed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from moderation.models import BlockedImage
from tests.admin.conftest import client_for
from tests.photos import photo

pytestmark = pytest.mark.django_db
ADD = "/admin/moderation/blockedimage/add/"


def test_a_moderator_blocks_a_file_that_was_never_uploaded(moderator: User) -> None:
    data = photo(400, 300, subject="motorcycle")
    response = client_for(moderator).post(
        ADD,
        {"file": SimpleUploadedFile("m.jpg", data, "image/jpeg"), "reason": "stolen photo"},
        follow=True,
    )
    entry = BlockedImage.objects.get()
    assert (entry.reason, entry.added_by, entry.source_image) == ("stolen photo", moderator, None)
    assert entry.phash is not None
    assert response.redirect_chain[-1][0] == f"/admin/moderation/blockedimage/{entry.pk}/change/"
    assert "is on the blocklist" in response.content.decode()


def test_a_file_that_is_not_an_image_is_refused_with_a_message(moderator: User) -> None:
    response = client_for(moderator).post(
        ADD, {"file": SimpleUploadedFile("a.txt", b"not an image at all"), "reason": "x"}
    )
    assert response.status_code == 200
    assert "cannot decode image" in response.content.decode()
    assert not BlockedImage.objects.exists()


def test_entries_are_never_edited(moderator: User, make_image: Any) -> None:
    entry = BlockedImage.objects.create(sha256="e" * 64, reason="before")
    url = f"/admin/moderation/blockedimage/{entry.pk}/change/"
    assert client_for(moderator).post(url, {"reason": "after"}).status_code == 403
    entry.refresh_from_db()
    assert entry.reason == "before"
