"""`manage.py setup_roles`: the two staff groups and exactly their permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command

from moderation.management.commands import setup_roles

pytestmark = pytest.mark.django_db


def permissions_of(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in group.permissions.select_related("content_type")
    }


def test_it_creates_the_moderators_and_auditors_groups() -> None:
    call_command("setup_roles", verbosity=0)
    assert permissions_of("Moderators") == {
        "uploads.view_image",
        "uploads.moderate_image",
        "uploads.view_imageevent",
        "moderation.view_moderationresult",
        "moderation.view_blockedimage",
        "moderation.add_blockedimage",
        "moderation.delete_blockedimage",
        "moderation.view_bank",
        "moderation.view_bankentry",
        "moderation.change_bank",
        "notifications.view_notification",
        "notifications.view_deliveryattempt",
        "notifications.redeliver_notification",
    }
    assert permissions_of("Auditors") == {
        "uploads.view_image",
        "uploads.view_imageevent",
        "moderation.view_moderationresult",
        "moderation.view_blockedimage",
        "moderation.view_bank",
        "moderation.view_bankentry",
        "notifications.view_notification",
        "notifications.view_deliveryattempt",
    }


def test_neither_group_may_change_or_delete_history() -> None:
    call_command("setup_roles", verbosity=0)
    for name in ("Moderators", "Auditors"):
        granted = permissions_of(name)
        for model in (
            "uploads.%s_image",
            "uploads.%s_imageevent",
            "moderation.%s_moderationresult",
            "notifications.%s_deliveryattempt",
            "notifications.%s_notification",
        ):
            assert model % "change" not in granted
            assert model % "delete" not in granted


def test_running_it_again_restores_the_permissions_and_adds_nothing() -> None:
    call_command("setup_roles", verbosity=0)
    moderators = Group.objects.get(name="Moderators")
    moderators.permissions.add(Permission.objects.get(codename="delete_imageevent"))
    moderators.permissions.remove(Permission.objects.get(codename="moderate_image"))
    call_command("setup_roles", verbosity=0)
    assert "uploads.delete_imageevent" not in permissions_of("Moderators")
    assert "uploads.moderate_image" in permissions_of("Moderators")
    assert Group.objects.filter(name__in=["Moderators", "Auditors"]).count() == 2


def test_it_names_the_permissions_it_cannot_find(monkeypatch: Any) -> None:
    monkeypatch.setitem(
        setup_roles.ROLES, "Auditors", (*setup_roles.AUDITOR_PERMISSIONS, "uploads.fly_image")
    )
    with pytest.raises(CommandError, match=r"uploads\.fly_image"):
        call_command("setup_roles", verbosity=0)
