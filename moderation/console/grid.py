"""Grid triage: a page of tiles for quick passes over low-risk images, each claimed for the
moderator like in the workspace; approve or reject one tile, or the selected ones after a
confirmation."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from moderation.console import claims, workspace
from moderation.console.views import REJECT_REASONS, image_url, short_duration
from uploads.models import Image

PAGE_SIZES = (12, 24, 48)


def plural(count: int, noun: str = "image") -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def tile(image: Image, preferences: Any) -> dict[str, Any]:
    result = workspace.latest_result(image)
    labels = workspace.labels_of(result)
    return {
        "image": image,
        "preview_url": image_url("preview", image.pk),
        "change_url": image_url("change", image.pk),
        "top_label": labels[0] if labels else None,
        "blocked": result is not None and result.blocked_image_id is not None,
        "failed": result is None or not result.outcome,
        "waited": short_duration(timezone.now() - image.state_changed_at),
        "blur": workspace.should_blur(result, preferences),
    }


def page_size(request: HttpRequest) -> int:
    size = request.GET.get("size", "")
    return int(size) if size.isdigit() and int(size) in PAGE_SIZES else PAGE_SIZES[1]


def grid_view(request: HttpRequest, context: dict[str, Any]) -> TemplateResponse:
    workspace.require(request, workspace.VIEW)
    can_decide = request.user.has_perm(workspace.MODERATE)
    size = page_size(request)
    if can_decide:
        images = claims.claim_page(request.user, count=size)
    else:
        images = list(claims.available(request.user)[:size])
    preferences = workspace.preferences_of(request.user)
    context = {
        **context,
        "title": "Grid triage" if can_decide else "Grid triage (read only)",
        "tiles": [tile(image, preferences) for image in images],
        "greyscale": preferences.greyscale,
        "can_decide": can_decide,
        "reasons": list(enumerate(workspace.STANDARD_REASONS, 1)),
        "all_reasons": REJECT_REASONS,
        "queue": workspace.queue_numbers(),
        "size": size,
        "sizes": PAGE_SIZES,
    }
    return TemplateResponse(request, "admin/review/grid.html", context)


def chosen(request: HttpRequest) -> tuple[str, list[uuid.UUID]]:
    """The action and images of a grid form: one tile's button, or the selection."""
    single = request.POST.get("tile", "")
    if ":" in single:
        action, _, image_id = single.partition(":")
        return action, workspace.parse_ids([image_id])
    return request.POST.get("action", ""), workspace.parse_ids(request.POST.getlist("id"))


def decide_view(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    workspace.require(request, workspace.MODERATE)
    back = HttpResponseRedirect(reverse("admin:review_grid"))
    if request.method != "POST":
        return back
    action, ids = chosen(request)
    if action not in ("approve", "reject") or not ids:
        messages.warning(request, "Nothing was changed: choose images and an action.")
        return back
    reason = ""
    if action == "reject":
        text, error = workspace.reason_from(request.POST)
        if text is None:
            messages.error(request, f"Nothing was changed: {error}")
            return back
        reason = text
    images = list(Image.objects.filter(pk__in=ids).order_by("state_changed_at"))
    if len(images) > 1 and request.POST.get("confirmed") != "yes":
        return confirm(request, context, action, images, reason)
    apply(request, images, action, reason)
    return back


def confirm(
    request: HttpRequest, context: dict[str, Any], action: str, images: list[Image], reason: str
) -> TemplateResponse:
    verb = "Approve" if action == "approve" else "Reject"
    context = {
        **context,
        "title": f"{verb} {plural(len(images))}?",
        "verb": verb,
        "action": action,
        "reason": request.POST.get("reason", ""),
        "note": request.POST.get("note", ""),
        "reason_text": reason,
        "images": [(image, image_url("preview", image.pk)) for image in images],
    }
    return TemplateResponse(request, "admin/review/grid_confirm.html", context)


def apply(request: HttpRequest, images: list[Image], action: str, reason: str) -> None:
    done = 0
    for image in images:
        changed, message = workspace.decide(image, request.user, action, reason)
        if changed:
            done += 1
        else:
            messages.warning(request, message)
    if done:
        past = "approved" if action == "approve" else "rejected"
        messages.success(request, f"{plural(done)} {past}.")
