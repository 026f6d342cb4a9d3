"""Create or update the staff groups of the admin: Moderators and Auditors.

Each group gets exactly the permissions listed here (extra ones are removed), so running it
again after a release brings existing groups up to date. Neither group may delete history.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

AUDITOR_PERMISSIONS = (
    "uploads.view_image",
    "uploads.view_imageevent",
    "moderation.view_moderationresult",
    "moderation.view_blockedimage",
    "moderation.view_bank",
    "moderation.view_bankentry",
    "notifications.view_notification",
    "notifications.view_deliveryattempt",
)
MODERATOR_PERMISSIONS = (
    *AUDITOR_PERMISSIONS,
    "uploads.moderate_image",
    "moderation.add_blockedimage",
    "moderation.delete_blockedimage",
    "moderation.change_bank",
    "notifications.redeliver_notification",
)
ROLES = {"Moderators": MODERATOR_PERMISSIONS, "Auditors": AUDITOR_PERMISSIONS}


def permissions_named(names: tuple[str, ...]) -> list[Permission]:
    wanted = {tuple(name.split(".", 1)) for name in names}
    found = [
        permission
        for permission in Permission.objects.select_related("content_type")
        if (permission.content_type.app_label, permission.codename) in wanted
    ]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
    if missing:
        listed = ", ".join(sorted(".".join(name) for name in missing))
        raise CommandError(f"permissions not found (run migrate first?): {listed}")
    return found


@transaction.atomic
def setup_roles() -> dict[str, int]:
    """Create the groups and set their permissions. Safe to run twice."""
    counts = {}
    for name, permission_names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = permissions_named(permission_names)
        group.permissions.set(permissions)
        counts[name] = len(permissions)
    return counts


class Command(BaseCommand):
    help = "Create or update the Moderators and Auditors groups and their permissions."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, count in setup_roles().items():
            if options["verbosity"] > 0:
                self.stdout.write(f"{name}: {count} permissions")
