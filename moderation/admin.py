"""Moderation results (read-only, written by the pipeline), the blocklist, which moderators
can add to (from a file; images are added from the image list) and remove from, and the hash
banks (sizes and recent matches; entries are imported with `manage.py import_hashes`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from moderation import blocking
from moderation.console import images  # noqa: F401  registers the image console
from moderation.console.views import image_link, moderation_summary, preview_tag
from moderation.models import Bank, BankEntry, BlockedImage, ModerationResult


@admin.register(ModerationResult)
class ModerationResultAdmin(admin.ModelAdmin):
    list_display = ("created_at", "image_column", "backend_name", "summary", "duration_ms")
    list_filter = (
        "outcome",
        "backend",
        "trigger",
        "bank_entry__bank",
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("image", "blocked_image", "bank_entry__bank")
    search_fields = ("=image__md5", "=image__sha256", "=image__user_id", "=pdq")
    show_full_result_count = False
    fields = (
        "image_column",
        "created_at",
        "trigger",
        "backend",
        "model_version",
        "outcome",
        "reason",
        "error",
        "summary",
        "blocklist_distance",
        "pdq",
        "pdq_quality",
        "bank_distance",
        "duration_ms",
        "labels",
        "policy",
        "raw",
    )
    readonly_fields = fields

    # Written by the pipeline, read by people.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Image", ordering="image__created_at")
    def image_column(self, result: ModerationResult) -> str:
        return image_link(result.image)

    @admin.display(description="Backend", ordering="backend")
    def backend_name(self, result: ModerationResult) -> str:
        name = result.backend.rsplit(".", 1)[-1]
        return f"{name} {result.model_version}".strip()

    @admin.display(description="Labels (outcome)")
    def summary(self, result: ModerationResult) -> str:
        return moderation_summary(result)


class BlockFileForm(forms.Form):
    file = forms.FileField(help_text="An image nobody may upload, nor anything that looks like it.")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


@admin.register(BlockedImage)
class BlockedImageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "source", "short_sha256", "phash_hex", "reason", "added_by")
    list_filter = (("created_at", admin.DateFieldListFilter),)
    list_select_related = ("source_image", "added_by")
    search_fields = ("=sha256", "=source_image__md5", "=source_image__user_id")
    show_full_result_count = False
    fields = (
        "source",
        "sha256",
        "phash_hex",
        "reason",
        "added_by",
        "created_at",
        "match_count",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BlockedImage]:
        return super().get_queryset(request).annotate(match_count=Count("matches"))

    # Hashes are computed from an image, never typed in; entries are added or removed.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Image")
    def source(self, entry: BlockedImage) -> str:
        if entry.source_image is None:
            return "-"
        return format_html(
            "{}<br>{}", preview_tag(entry.source_image_id, size=80), image_link(entry.source_image)
        )

    @admin.display(description="sha256", ordering="sha256")
    def short_sha256(self, entry: BlockedImage) -> str:
        return f"{entry.sha256[:16]}…"

    @admin.display(description="Uploads that matched")
    def match_count(self, entry: BlockedImage) -> int:
        return int(getattr(entry, "match_count", 0))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Block a file that was never uploaded here (images are added from the image list)."""
        if not self.has_add_permission(request):
            return super().add_view(request, form_url, extra_context)  # the stock 403
        form = BlockFileForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = blocking.block_bytes(
                    form.cleaned_data["file"].read(),
                    reason=form.cleaned_data["reason"],
                    added_by=request.user,
                )
            except ValueError as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"{entry} is on the blocklist.", messages.SUCCESS)
                url = reverse("admin:moderation_blockedimage_change", args=[entry.pk])
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Block an image file",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/moderation/blockedimage/add_file.html", context)


RECENT = timedelta(days=7)


@admin.register(Bank)
class BankAdmin(admin.ModelAdmin):
    """Banks are created by `import_hashes` (or here); their entries are imported, not typed."""

    list_display = (
        "name",
        "action",
        "match_distance",
        "enabled",
        "size",
        "recent_matches",
        "provenance",
    )
    list_filter = ("enabled", "action", "builtin")
    list_editable = ("enabled",)
    search_fields = ("name", "provenance")
    fields = ("name", "action", "match_distance", "enabled", "provenance", "builtin", "created_at")
    readonly_fields = ("builtin", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Bank]:
        since = timezone.now() - RECENT
        return (
            super()
            .get_queryset(request)
            .annotate(
                size=Count("entries", distinct=True),
                recent_matches=Count(
                    "entries__matches",
                    filter=Q(entries__matches__created_at__gte=since),
                    distinct=True,
                ),
            )
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        builtin = obj is not None and obj.builtin
        return not builtin and super().has_delete_permission(request, obj)

    @admin.display(description="Entries", ordering="size")
    def size(self, bank: Bank) -> int:
        return int(getattr(bank, "size", 0))

    @admin.display(description="Matches (7 days)", ordering="recent_matches")
    def recent_matches(self, bank: Bank) -> str:
        count = int(getattr(bank, "recent_matches", 0))
        if not count:
            return "0"
        url = reverse("admin:moderation_moderationresult_changelist")
        return format_html(
            '<a href="{}?bank_entry__bank__id__exact={}">{}</a>', url, bank.pk, count
        )


@admin.register(BankEntry)
class BankEntryAdmin(admin.ModelAdmin):
    list_display = ("added_at", "bank", "hash", "tags", "source", "match_count")
    list_filter = ("bank", ("added_at", admin.DateFieldListFilter))
    list_select_related = ("bank", "source_image")
    search_fields = ("=pdq", "=md5", "tags")
    show_full_result_count = False
    fields = ("bank", "pdq", "md5", "tags", "reason", "source", "added_at", "match_count")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BankEntry]:
        return super().get_queryset(request).annotate(match_count=Count("matches"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # imported with manage.py import_hashes, or added by a rejection

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Image")
    def source(self, entry: BankEntry) -> str:
        return "-" if entry.source_image is None else image_link(entry.source_image)

    @admin.display(description="Uploads that matched", ordering="match_count")
    def match_count(self, entry: BankEntry) -> int:
        return int(getattr(entry, "match_count", 0))
