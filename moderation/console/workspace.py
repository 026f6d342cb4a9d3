"""The review workspace: one image at a time, keyboard first, each image claimed for the
moderator who has it open (moderation.console.claims).

The page is a shell; its script asks `next/` for an image (the server claims it and answers
with the image's panel rendered here), keeps one more loaded behind it, and posts decisions to
`<id>/decide/`, which go through the image's transitions exactly as the image page's do.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from moderation.console import claims
from moderation.console.views import (
    REJECT_REASONS,
    ReasonForm,
    image_url,
    not_changed_message,
    short_duration,
)
from moderation.models import ModerationResult, ReviewerPreference
from uploads.models import EventKind, Image, State

# The reasons `r` then a digit gives, in order ("Other" needs words, so it has no digit).
STANDARD_REASONS = [value for value, _ in REJECT_REASONS if value != "Other"]
MAX_EXCLUDED = 1000
VIEW = "uploads.view_image"
MODERATE = "uploads.moderate_image"


def require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def preferences_of(user: Any) -> ReviewerPreference:
    return ReviewerPreference.objects.filter(user=user).first() or ReviewerPreference(user=user)


def latest_result(image: Image) -> ModerationResult | None:
    results = list(image.moderation_results.select_related("blocked_image")[:10])
    return next((r for r in results if r.outcome), results[0] if results else None)


def top_confidence(result: ModerationResult | None) -> float:
    labels = result.labels if result is not None and isinstance(result.labels, list) else []
    scores = [float(label.get("confidence") or 0) for label in labels if isinstance(label, dict)]
    return max(scores, default=0.0)


def should_blur(result: ModerationResult | None, preferences: ReviewerPreference) -> bool:
    return preferences.blur_flagged and top_confidence(result) >= settings.REVIEW_BLUR_CONFIDENCE


def uploader_history(user_id: str) -> dict[str, int]:
    """How many images the uploader sent, and how many were rejected or taken down: 1 query."""
    per_state = dict(
        Image.objects.filter(user_id=user_id)
        .order_by()
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    return {
        "uploads": sum(per_state.values()),
        "published": per_state.get(State.PUBLISHED, 0) + per_state.get(State.APPROVED, 0),
        "rejected": per_state.get(State.REJECTED, 0),
        "taken_down": per_state.get(State.TAKEN_DOWN, 0),
    }


def labels_of(result: ModerationResult | None) -> list[dict[str, Any]]:
    labels = result.labels if result is not None and isinstance(result.labels, list) else []
    shown = [
        {
            "name": str(label.get("name", "?")),
            "parent": str(label.get("parent") or ""),
            "confidence": float(label.get("confidence") or 0),
        }
        for label in labels
        if isinstance(label, dict)
    ]
    return sorted(shown, key=lambda label: -label["confidence"])


def failures_of(image: Image, result: ModerationResult | None) -> list[str]:
    """Why automatic moderation could not decide: the errors of its attempts."""
    errors = [result.error] if result is not None and result.error else []
    attempts = image.events.filter(kind=EventKind.ATTEMPT_FAILED).order_by("-at")[:3]
    errors += [event.reason for event in attempts if event.reason]
    if image.failure_reason:
        errors.append(image.failure_reason)
    return list(dict.fromkeys(errors))


def item_context(image: Image, *, user: Any, preferences: ReviewerPreference) -> dict[str, Any]:
    result = latest_result(image)
    blocked = result.blocked_image if result is not None else None
    return {
        "image": image,
        "preview_url": image_url("preview", image.pk),
        "change_url": image_url("change", image.pk),
        "waited": short_duration(timezone.now() - image.state_changed_at),
        "result": result,
        "labels": labels_of(result),
        "failures": failures_of(image, result),
        "blocked": blocked,
        "blocked_preview": (
            image_url("preview", blocked.source_image_id)
            if blocked is not None and blocked.source_image_id
            else ""
        ),
        "history": uploader_history(image.user_id),
        "uploader_url": f"{reverse('admin:uploads_image_changelist')}?show=all&user_id="
        f"{image.user_id}",
        "blur": should_blur(result, preferences),
        "greyscale": preferences.greyscale,
    }


def queue_numbers(*, deciding: list[uuid.UUID] | None = None) -> dict[str, Any]:
    """The queue's size and oldest age, without the images the asking moderator has just
    decided (the workspace applies a decision once its undo window closes)."""
    queue = Image.objects.awaiting_review().exclude(pk__in=deciding or [])
    oldest = queue.values_list("state_changed_at", flat=True).first()
    return {
        "size": queue.count(),
        "oldest": short_duration(timezone.now() - oldest) if oldest else "",
    }


def parse_ids(values: list[str]) -> list[uuid.UUID]:
    ids = []
    for value in values[:MAX_EXCLUDED]:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    return ids


def workspace_view(request: HttpRequest, context: dict[str, Any]) -> TemplateResponse:
    require(request, VIEW)
    can_decide = request.user.has_perm(MODERATE)
    context = {
        **context,
        "title": "Review workspace" if can_decide else "Review workspace (read only)",
        "can_decide": can_decide,
        "reasons": list(enumerate(STANDARD_REASONS, 1)),
        "undo_seconds": settings.REVIEW_UNDO_SECONDS,
        "claim_seconds": settings.REVIEW_CLAIM_SECONDS,
        "queue": queue_numbers(),
    }
    return TemplateResponse(request, "admin/review/workspace.html", context)


@require_POST
def next_view(request: HttpRequest) -> JsonResponse:
    """Claim the next image for this moderator (an auditor only looks) and render it."""
    require(request, VIEW)
    exclude = parse_ids(request.POST.getlist("exclude"))
    if request.user.has_perm(MODERATE):
        image = claims.claim_next(request.user, exclude=exclude)
    else:
        image = claims.available(request.user, exclude=exclude).first()
    deciding = parse_ids(request.POST.getlist("deciding"))
    body: dict[str, Any] = {"queue": queue_numbers(deciding=deciding), "item": None}
    if image is not None:
        preferences = preferences_of(request.user)
        context = item_context(image, user=request.user, preferences=preferences)
        body["item"] = {
            "id": str(image.pk),
            "md5": image.md5,
            "preview_url": context["preview_url"],
            "html": render_to_string("admin/review/item.html", context, request=request),
        }
    return JsonResponse(body)


def decide(image: Image, user: Any, action: str, reason: str) -> tuple[bool, str]:
    """One decision from the workspace or the grid; refused when another moderator holds
    the image, or (as everywhere) when the image has left the queue."""
    holder = claims.holder(image.pk)
    if holder is not None and holder.moderator_id != user.pk:
        return False, f"Image {image.md5} is open for {holder.moderator.get_username()}."
    if action == "approve":
        changed = image.approve(by=user)
    else:
        changed = image.reject(by=user, reason=reason)
    claims.release([image.pk], user)
    if not changed:
        return False, str(not_changed_message(image))
    return True, f"Image {image.md5} {image.get_state_display().lower()}."


def reason_from(data: Any) -> tuple[str | None, str]:
    """The rejection reason posted (a standard reason, or "Other" with words); None if invalid."""
    form = ReasonForm(data)
    if not form.is_valid():
        errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        return None, errors
    return form.text, ""


@require_POST
def decide_view(request: HttpRequest, image_id: uuid.UUID) -> JsonResponse:
    require(request, MODERATE)
    image = get_object_or_404(Image, pk=image_id)
    action = request.POST.get("action")
    reason = ""
    if action == "reject":
        text, error = reason_from(request.POST)
        if text is None:
            return JsonResponse(
                {"ok": False, "message": f"Nothing was changed: {error}"}, status=400
            )
        reason = text
    elif action != "approve":
        return JsonResponse({"ok": False, "message": "Unknown action."}, status=400)
    changed, message = decide(image, request.user, action, reason)
    return JsonResponse({"ok": changed, "message": message}, status=200 if changed else 409)


@require_POST
def release_view(request: HttpRequest) -> JsonResponse:
    require(request, VIEW)
    released = claims.release(parse_ids(request.POST.getlist("id")), request.user)
    return JsonResponse({"released": released})


@require_POST
def renew_view(request: HttpRequest) -> JsonResponse:
    """Keep the claims of the images the workspace has loaded (it calls this every minute)."""
    require(request, MODERATE)
    kept = [
        str(pk) for pk in parse_ids(request.POST.getlist("id")) if claims.take(pk, request.user)
    ]
    return JsonResponse({"kept": kept})


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = ReviewerPreference
        fields = ("blur_flagged", "greyscale")
        labels = {"blur_flagged": "Blur flagged previews", "greyscale": "Greyscale previews"}


def preferences_view(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    require(request, VIEW)
    form = PreferenceForm(request.POST or None, instance=preferences_of(request.user))
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your preview preferences are saved.")
        return HttpResponseRedirect(reverse("admin:review"))
    context = {**context, "title": "Preview preferences", "form": form}
    return TemplateResponse(request, "admin/review/preferences.html", context)
