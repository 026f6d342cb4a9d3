"""django.contrib.admin, with the console's admin site as the default site (Django's way of
replacing `admin.site`), so the review workspace lives at `<ADMIN_PATH>review/`."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "moderation.console.site.ConsoleSite"
