"""Deliveries to PinsterApi in the admin: per image, the failed ones, every attempt, and a
Redeliver action. The rows are written by the machine: nobody adds, edits or deletes them."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from infra.admin import ReadOnly
from notifications.models import DeliveryAttempt, Notification
from uploads.models import Image

STATE_COLOURS: dict[str, str] = {
    Notification.State.DELIVERED: "#2e7d32",
    Notification.State.FAILED: "#ba2121",
    Notification.State.SKIPPED: "#8a6d00",
    Notification.State.SUPERSEDED: "#666666",
}


def deliveries_url(image: Image | Any) -> str:
    """The changelist of one image's notifications (to link from the image's page)."""
    pk = getattr(image, "pk", image)
    return f"{reverse('admin:notifications_notification_changelist')}?image__id__exact={pk}"


class StateBadge:
    @admin.display(description="state", ordering="state")
    def state_badge(self, notification: Notification) -> str:
        colour = STATE_COLOURS.get(notification.state, "inherit")
        label = notification.get_state_display()
        if notification.state == Notification.State.FAILED:
            return format_html('<strong style="color:{}">&#9888; {}</strong>', colour, label)
        return format_html('<span style="color:{}">{}</span>', colour, label)


class DeliveryAttemptInline(ReadOnly, admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "at", "status_code", "latency_ms", "result", "error", "response_snippet")
    readonly_fields = fields
    ordering = ("at", "id")
    extra = 0
    can_delete = False


class NotificationInline(StateBadge, ReadOnly, admin.TabularInline):
    """An image's notifications, for the image's admin page."""

    model = Notification
    fields = ("event", "kind", "state_badge", "attempts", "last_status_code", "delivered_at")
    readonly_fields = fields
    ordering = ("created_at",)
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="event id")
    def event(self, notification: Notification) -> str:
        return str(notification.pk)


@admin.register(Notification)
class NotificationAdmin(StateBadge, ReadOnly, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "state_badge",
        "image_link",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "failure",
    )
    list_filter = ("state", "kind", "created_at")
    show_facets = admin.ShowFacets.ALWAYS  # how many failed, at a glance
    search_fields = ("=id", "=image__id", "=image__md5", "=image__imageable_id", "=image__user_id")
    list_select_related = ("image",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "image_link",
        "kind",
        "state_badge",
        "failure_reason",
        "url",
        "attempts",
        "last_status_code",
        "created_at",
        "next_attempt_at",
        "retry_until",
        "delivered_at",
        "body_json",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = ("redeliver",)

    @admin.display(description="image", ordering="image__created_at")
    def image_link(self, notification: Notification) -> str:
        image = notification.image
        try:
            url = reverse("admin:uploads_image_change", args=[image.pk])
        except NoReverseMatch:
            return f"{image.md5} ({image.imageable_type} {image.imageable_id})"
        return format_html(
            '<a href="{}">{}</a> ({} {})', url, image.md5, image.imageable_type, image.imageable_id
        )

    @admin.display(description="failure")
    def failure(self, notification: Notification) -> str:
        if notification.state != Notification.State.FAILED:
            return notification.failure_reason[:80]
        return format_html("<strong>{}</strong>", notification.failure_reason[:160])

    @admin.display(description="body sent")
    def body_json(self, notification: Notification) -> str:
        return format_html("<pre>{}</pre>", json.dumps(notification.body, indent=2))

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.redeliver_notification")

    @admin.action(description="Redeliver (same event id, fresh token)", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        chosen = list(queryset)
        queued = [n for n in chosen if n.redeliver(by=request.user)]
        refused = len(chosen) - len(queued)
        if queued:
            self.message_user(request, f"{len(queued)} notification(s) queued for redelivery.")
        if refused:
            self.message_user(
                request,
                f"{refused} notification(s) not redelivered: being sent right now, or no URL is "
                "configured for their kind (REJECTION_NOTIFY_URL).",
                level=messages.WARNING,
            )
