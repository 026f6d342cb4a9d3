"""The audit history in the admin: every event of every image, filtered per image, uploader,
moderator, date and kind, and exported as CSV. Read-only: events are written by transitions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator

from infra.admin import ReadOnly
from moderation.console import filters, views
from uploads.models import Image, ImageEvent


@admin.register(ImageEvent)
class ImageEventAdmin(ReadOnly, admin.ModelAdmin):
    """The audit history: per image, per uploader, per moderator, by date and kind."""

    list_display = ("when", "image_column", "uploader", "kind", "change", "actor_column", "why")
    list_filter = (
        "kind",
        ("at", admin.DateFieldListFilter),
        filters.ActorTypeFilter,
        filters.ModeratorFilter,
        filters.EventImageFilter,
        filters.EventUploaderFilter,
        filters.EventActorFilter,
    )
    list_select_related = ("image",)
    search_fields = ("actor",)  # see get_search_results
    search_help_text = "Exact md5, sha256, image id, uploader id, imageable id or actor."
    ordering = ("-at", "-id")
    list_per_page = 100
    show_full_result_count = False
    fields = ("at", "image_column", "kind", "change", "actor", "user", "reason", "details")
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ImageEvent], search_term: str
    ) -> tuple[QuerySet[ImageEvent], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if ":" in term:  # "user:alice", "system:moderate_image", "uploader:<id>"
            return queryset.filter(actor=term), False
        images = filters.exact_search(Image.objects.all(), term).values("pk")
        return queryset.filter(image__in=images), False

    @admin.display(description="Image", ordering="image__created_at")
    def image_column(self, event: ImageEvent) -> str:
        history = f"{reverse('admin:uploads_imageevent_changelist')}?image={event.image_id}"
        return format_html(
            '{}<br><a href="{}" class="timeline-of">timeline</a>',
            views.image_link(event.image),
            history,
        )

    @admin.display(description="When", ordering="at")
    def when(self, event: ImageEvent) -> str:
        at = timezone.localtime(event.at)
        return format_html(
            "{}<br><small>{}</small>",
            date_format(at, "DATE_FORMAT"),
            date_format(at, "TIME_FORMAT"),
        )

    @admin.display(description="Uploader", ordering="image__user_id")
    def uploader(self, event: ImageEvent) -> str:
        user_id = event.image.user_id
        url = reverse("admin:uploads_imageevent_changelist")
        query = urlencode({"uploader": user_id})
        return format_html('<a href="{}?{}">{}</a>', url, query, views.ident(user_id))

    @admin.display(description="Change")
    def change(self, event: ImageEvent) -> str:
        if not (event.from_state or event.to_state):
            return "-"
        if event.from_state == event.to_state:
            return event.get_to_state_display()
        return f"{event.get_from_state_display()} → {event.get_to_state_display()}"

    @admin.display(description="Reason")
    def why(self, event: ImageEvent) -> str:
        return Truncator(event.reason).chars(120)

    @admin.display(description="Actor", ordering="actor")
    def actor_column(self, event: ImageEvent) -> str:
        url = reverse("admin:uploads_imageevent_changelist")
        query = urlencode({"actor": event.actor})
        return format_html('<a href="{}?{}">{}</a>', url, query, event.actor)

    def get_urls(self) -> list[Any]:
        export = self.admin_site.admin_view(self.export_view)
        return [path("export/", export, name="uploads_imageevent_export"), *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The filtered history as CSV (the same filters and search as the list)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return views.export_events(changelist.queryset)
