"""The moderation console's image pages: the review queue, an image's page, decisions.

Images are never edited or deleted here: decisions go through the model's
transition methods, which refuse (return False) when someone else decided first.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from infra.admin import ReadOnly
from moderation import blocking
from moderation.console import claims, filters, views
from moderation.console.views import (
    REJECT_REASONS,
    TAKE_DOWN_REASONS,
    ReasonForm,
    moderation_summary,
)
from moderation.models import ModerationResult
from notifications.admin import NotificationInline
from publishing.services import public_storage
from uploads.models import Actor, Image, State
from uploads.services import other_pins_showing, take_down_content

TIMELINE_LIMIT = 200
RESTORE_REASONS = [
    ("Decided in error", "Decided in error"),
    ("Appeal upheld", "Appeal upheld"),
    ("Legal request withdrawn", "Legal request withdrawn"),
    ("Other", "Other (say why below)"),
]
post_only = method_decorator(require_POST)


@admin.register(Image)
class ImageAdmin(ReadOnly, admin.ModelAdmin):
    list_display = (
        "preview",
        "uploader",
        "imageable",
        "uploaded",
        "waiting",
        "state_and_decider",
        "moderation",
    )
    list_display_links = ("preview",)
    list_filter = (
        filters.ShowFilter,
        filters.LabelFilter,
        filters.BackendFilter,
        ("created_at", admin.DateFieldListFilter),
        filters.ImageUploaderFilter,
    )
    search_fields = ("md5", "sha256", "user_id", "imageable_id")  # see get_search_results
    search_help_text = "Exact md5, sha256, image id, uploader id or imageable id."
    list_per_page = 50
    show_full_result_count = False
    actions = (
        "approve_selected",
        "reject_selected",
        "take_down_selected",
        "restore_selected",
        "retry_selected",
        "block_selected",
    )
    fieldsets = (
        (
            "Upload",
            {"fields": ("id", "uploaded", "uploader", "imageable", "name", "description")},
        ),
        ("File", {"fields": ("md5", "sha256", "content_type", "dimensions", "byte_size")}),
        (
            "Pipeline",
            {
                "fields": (
                    "state",
                    "state_changed_at",
                    "attempts",
                    "failure_reason",
                    "decider",
                    "decision_reason",
                    "published_at",
                    "rendition_links",
                )
            },
        ),
    )
    readonly_fields = (
        "uploaded",
        "uploader",
        "imageable",
        "dimensions",
        "decider",
        "rendition_links",
    )
    inlines = (NotificationInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Image]:
        results = ModerationResult.objects.select_related("blocked_image", "bank_entry__bank")
        return (
            super()
            .get_queryset(request)
            .select_related("decided_by", "review_claim__moderator")
            .prefetch_related(Prefetch("moderation_results", queryset=results))
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        shown = request.GET.get(filters.ShowFilter.parameter_name, filters.QUEUE)
        title = filters.ShowFilter.titles().get(shown, "Images")
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        if request.GET.get(filters.ShowFilter.parameter_name, filters.QUEUE) == filters.QUEUE:
            return ("state_changed_at",)  # the queue: longest waiting first
        return ("-created_at",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Image], search_term: str
    ) -> tuple[QuerySet[Image], bool]:
        if not search_term.strip():
            return queryset, False
        return filters.exact_search(queryset, search_term), False

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("uploads.moderate_image")

    def has_block_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("moderation.add_blockedimage")

    # --- Columns ---

    @admin.display(description="Preview")
    def preview(self, image: Image) -> str:
        return views.preview_tag(image.pk)

    @admin.display(description="Uploader", ordering="user_id")
    def uploader(self, image: Image) -> str:
        url = reverse("admin:uploads_image_changelist")
        return format_html(
            '<a href="{}?{}">{}</a>',
            url,
            urlencode({"show": "all", "user_id": image.user_id}),
            views.ident(image.user_id),
        )

    @admin.display(description="Imageable")
    def imageable(self, image: Image) -> str:
        return format_html(
            '{}<br><small class="ident" title="{}">{}</small>',
            image.imageable_type,
            image.imageable_id,
            image.imageable_id,
        )

    @admin.display(description="Uploaded", ordering="created_at")
    def uploaded(self, image: Image) -> str:
        return format_html(
            "{}<br><small>{}</small>",
            date_format(timezone.localtime(image.created_at), "DATE_FORMAT"),
            date_format(timezone.localtime(image.created_at), "TIME_FORMAT"),
        )

    @admin.display(description="Size")
    def dimensions(self, image: Image) -> str:
        frames = f", {image.frame_count} frames" if image.frame_count > 1 else ""
        return f"{image.width}x{image.height} {image.format}{frames}"

    @admin.display(description="Waiting", ordering="state_changed_at")
    def waiting(self, image: Image) -> str:
        if image.state != State.IN_REVIEW:
            return "-"
        waited = views.short_duration(timezone.now() - image.state_changed_at)
        claim = getattr(image, "review_claim", None)
        if claim is None or claim.until <= timezone.now():
            return waited
        return format_html(
            '{}<br><small class="held-by">open for {}</small>', waited, claim.moderator
        )

    @admin.display(description="State", ordering="state")
    def state_and_decider(self, image: Image) -> str:
        if image.decided_by is None:
            return image.get_state_display()
        return format_html(
            "{}<br><small>by {}</small>", image.get_state_display(), image.decided_by
        )

    @admin.display(description="Renditions")
    def rendition_links(self, image: Image) -> str:
        if not image.renditions:
            return "-"
        public = public_storage()
        return format_html(
            '<ul class="renditions">{}</ul>',
            format_html_join(
                "", '<li><a href="{}">{}</a></li>', ((public.url(k), k) for k in image.renditions)
            ),
        )

    @admin.display(description="Decided by")
    def decider(self, image: Image) -> str:
        # Plain text: moderators may not open the user admin a link would lead to.
        return image.decided_by.get_username() if image.decided_by else "-"

    @admin.display(description="Moderation")
    def moderation(self, image: Image) -> str:
        results = image.moderation_results.all()  # prefetched, newest first
        latest = next((r for r in results if r.outcome), results[0] if results else None)
        if latest is not None and (latest.outcome or not latest.error):
            return moderation_summary(latest)
        error = latest.error if latest is not None else image.failure_reason
        if not error:
            return "-"
        return format_html(
            '<span class="errornote-inline">Automatic moderation failed:</span> {}',
            Truncator(error).chars(160),
        )

    # --- The image's page ---

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        image = kwargs.get("obj")
        if image is not None:
            context.update(self.review_context(request, image))
        return super().render_change_form(request, context, *args, **kwargs)

    def review_context(self, request: HttpRequest, image: Image) -> dict[str, Any]:
        can_moderate = self.has_moderate_permission(request)
        history = reverse("admin:uploads_imageevent_changelist")
        return {
            "preview_url": views.image_url("preview", image.pk),
            "results": [(r, moderation_summary(r)) for r in image.moderation_results.all()],
            "events": image.events.order_by("at", "id")[:TIMELINE_LIMIT],
            "events_url": f"{history}?image={image.pk}",
            "can_decide": can_moderate and image.state == State.IN_REVIEW,
            "claim": claims.holder(image.pk),
            "can_take_down": can_moderate and image.state in views.TAKE_DOWN_STATES,
            "other_pins_showing": other_pins_showing(image) if can_moderate else 0,
            "reject_form": ReasonForm(prefix="reject"),
            "take_down_form": ReasonForm(prefix="take_down", choices=TAKE_DOWN_REASONS),
        }

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/preview/",
                view(self.preview_view, cacheable=True),
                name="uploads_image_preview",
            ),
            path(
                "<path:object_id>/approve/", view(self.approve_view), name="uploads_image_approve"
            ),
            path("<path:object_id>/reject/", view(self.reject_view), name="uploads_image_reject"),
            path(
                "<path:object_id>/take-down/",
                view(self.take_down_view),
                name="uploads_image_take_down",
            ),
            *super().get_urls(),
        ]

    def _image(self, request: HttpRequest, object_id: str, *, moderate: bool = False) -> Image:
        image = get_object_or_404(Image, pk=unquote(object_id))
        allowed = self.has_moderate_permission(request) if moderate else True
        if not (allowed and self.has_view_permission(request, image)):
            raise PermissionDenied
        return image

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        image = self._image(request, object_id)
        return views.preview_response(image, thumb=request.GET.get("size") == "thumb")

    @post_only
    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        image = self._image(request, object_id, moderate=True)
        return views.decide(self, request, image, lambda im, _: im.approve(by=request.user))

    @post_only
    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        image = self._image(request, object_id, moderate=True)
        form = ReasonForm(request.POST, prefix="reject")
        return views.decide(
            self, request, image, lambda im, why: im.reject(by=request.user, reason=why), form
        )

    @post_only
    def take_down_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        image = self._image(request, object_id, moderate=True)
        form = ReasonForm(request.POST, prefix="take_down", choices=TAKE_DOWN_REASONS)
        return views.decide(self, request, image, self._take_down(request), form)

    # --- Bulk actions ---

    @admin.action(description="Approve selected images", permissions=["moderate"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        views.apply_all(self, request, queryset, lambda im: im.approve(by=request.user), "approved")

    @admin.action(description="Reject selected images…", permissions=["moderate"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Image]) -> Any:
        return views.ask_reason(
            self,
            request,
            queryset,
            action="reject_selected",
            verb="Reject",
            past="rejected",
            choices=REJECT_REASONS,
            decision=lambda im, why: im.reject(by=request.user, reason=why),
        )

    @admin.action(description="Take down selected images…", permissions=["moderate"])
    def take_down_selected(self, request: HttpRequest, queryset: QuerySet[Image]) -> Any:
        return views.ask_reason(
            self,
            request,
            queryset,
            action="take_down_selected",
            verb="Take down",
            past="taken down",
            choices=TAKE_DOWN_REASONS,
            decision=self._take_down(request),
            notice=self._same_bytes_notice(queryset),
        )

    @staticmethod
    def _take_down(request: HttpRequest) -> views.Decision:
        """A takedown is of the content: every other image of its bytes shown or on its way
        goes with it (uploads.services.take_down_content)."""
        return lambda im, why: bool(take_down_content(image=im, by=request.user, reason=why))

    @staticmethod
    def _same_bytes_notice(queryset: QuerySet[Image]) -> str:
        chosen = list(queryset.values_list("pk", "sha256"))
        others = (
            Image.objects.filter(sha256__in={sha for _, sha in chosen})
            .exclude(pk__in=[pk for pk, _ in chosen])
            .showing()
            .count()
        )
        if not others:
            return ""
        pins = "1 other pin shows" if others == 1 else f"{others} other pins show"
        return f"{pins} the same bytes: they are taken down with these."

    @admin.action(
        description="Restore selected rejected or taken-down images…", permissions=["moderate"]
    )
    def restore_selected(self, request: HttpRequest, queryset: QuerySet[Image]) -> Any:
        return views.ask_reason(
            self,
            request,
            queryset,
            action="restore_selected",
            verb="Restore",
            past="restored (unblocked, to be published again)",
            choices=RESTORE_REASONS,
            decision=lambda im, why: im.restore(by=request.user, reason=why),
        )

    @admin.action(description="Retry selected failed images", permissions=["moderate"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        actor = Actor.user(request.user)
        views.apply_all(
            self,
            request,
            queryset,
            lambda im: im.retry(actor=actor, by=request.user),
            "put back at the stage that failed",
        )

    @admin.action(description="Add selected images to the blocklist", permissions=["block"])
    def block_selected(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        images = list(queryset)
        for image in images:
            blocking.block_image(
                image, reason=f"blocked by {request.user.get_username()}", added_by=request.user
            )
        self.message_user(request, f"{views.plural_images(len(images))} on the blocklist.")
