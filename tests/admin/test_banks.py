"""The admin lists hash banks with their sizes and recent matches, and shows what matched."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from moderation import banks
from moderation.models import Bank, BankEntry, ModerationResult
from tests.admin.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("root", password="root-password-1")


def test_the_bank_list_shows_each_bank_with_its_size_and_recent_matches(admin_user, make_image):
    bank = Bank.objects.create(name="partner-list", action="reject", provenance="NGO export")
    banks.import_lines(bank, ["ab" * 32, "cd" * 32, "ef" * 16])
    image = make_image(with_result=False)
    entry = bank.entries.get(pdq="ab" * 32)
    ModerationResult.objects.create(
        image=image, backend="x", outcome="rejected", bank_entry=entry, bank_distance=3
    )

    page = client_for(admin_user).get("/admin/moderation/bank/").content.decode()

    row = page[page.index("partner-list") :]
    assert "NGO export" in row
    assert '<td class="field-size">3</td>' in row
    assert f"?bank_entry__bank__id__exact={bank.pk}" in row
    assert Bank.objects.builtin().name in page


def test_a_moderation_result_names_the_bank_and_entry_it_matched(admin_user, make_image):
    bank = Bank.objects.create(name="partner-list")
    entry = BankEntry.objects.create(bank=bank, pdq="ab" * 32, tags="t")
    result = ModerationResult.objects.create(
        image=make_image(with_result=False),
        backend="x",
        outcome="in_review",
        bank_entry=entry,
        bank_distance=7,
    )

    page = client_for(admin_user).get(f"/admin/moderation/moderationresult/{result.pk}/change/")

    html = page.content.decode()
    assert f"/admin/moderation/bankentry/{entry.pk}/change/" in html
    assert "partner-list" in html
    assert "(distance 7)" in html


def test_the_builtin_bank_cannot_be_deleted(admin_user):
    bank = Bank.objects.builtin()

    response = client_for(admin_user).get(f"/admin/moderation/bank/{bank.pk}/delete/")

    assert response.status_code == 403
