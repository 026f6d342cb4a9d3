"""The dashboard at the top of the admin index, for staff who may see images."""

from __future__ import annotations

from typing import Any

from django import template

from moderation.console import views as admin_views

register = template.Library()


@register.inclusion_tag("admin/uploads/dashboard.html", takes_context=True)
def moderation_dashboard(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    if not request.user.has_perm("uploads.view_image"):
        return {"show": False}
    numbers = admin_views.dashboard_numbers()
    oldest = numbers["oldest_waiting"]
    return {
        "show": True,
        **numbers,
        "oldest_waiting": admin_views.short_duration(oldest) if oldest else "",
    }
