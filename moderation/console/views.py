"""The parts of the moderation console that are not stock ModelAdmin pages: the staff-only
preview of private originals, the decision forms and messages, the streamed CSV export of the
audit history, and the numbers of the dashboard."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.storage import storages
from django.db.models import Count, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from moderation.models import ModerationResult
from publishing import thumbnails
from uploads.models import EventKind, Image, ImageEvent, State

# What browsers show natively; anything else (HEIC) is previewed as a JPEG rendition.
BROWSER_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
THUMB_SIZE = thumbnails.Size(160, 160)
LARGE_SIZE = thumbnails.Size(2048, 2048)
TAKE_DOWN_STATES = frozenset({State.PUBLISHED, State.APPROVED, State.PUBLISHING})
EXPORT_CHUNK_SIZE = 2000
THUMB_CLASSES = (60, 80, 120)  # console.css: .thumb-60, ...

REJECT_REASONS = [
    ("Nudity or sexual content", "Nudity or sexual content"),
    ("Violence or gore", "Violence or gore"),
    ("Hate symbols or harassment", "Hate symbols or harassment"),
    ("Drugs, weapons or other illegal goods", "Drugs, weapons or other illegal goods"),
    ("Spam or advertising", "Spam or advertising"),
    ("Copy of someone else's image", "Copy of someone else's image"),
    ("Other", "Other (say why below)"),
]
TAKE_DOWN_REASONS = [
    ("Reported by users", "Reported by users"),
    ("Requested by the uploader", "Requested by the uploader"),
    ("Legal request", "Legal request"),
    *REJECT_REASONS,
]


# --- Links and previews ----------------------------------------------------------------


def image_url(name: str, image_id: Any) -> str:
    return reverse(f"admin:uploads_image_{name}", args=[image_id])


def image_link(image: Image) -> SafeString:
    return format_html(
        '<a href="{}" class="ident" title="{}">{}</a>',
        image_url("change", image.pk),
        image.md5,
        image.md5,
    )


def ident(value: Any, *, wide: bool = False) -> SafeString:
    """A long id shortened on screen; the full value on hover and when copied."""
    css = "ident ident-wide" if wide else "ident"
    return format_html('<span class="{}" title="{}">{}</span>', css, value, value)


def plural_images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def preview_tag(image_id: Any, *, size: int = 120) -> SafeString:
    """A thumbnail of a (possibly private) image, through the staff-only preview view."""
    return format_html(
        '<img src="{}?size=thumb" class="preview-thumb thumb-{}" loading="lazy" alt="preview">',
        image_url("preview", image_id),
        size if size in THUMB_CLASSES else 120,
    )


def preview_response(image: Image, *, thumb: bool) -> HttpResponseBase:
    """The private original as the browser can show it, never cached outside this browser."""
    try:
        original = storages["default"].open(image.md5, "rb")
    except FileNotFoundError:
        raise Http404("the original is not in storage") from None
    if not thumb and image.content_type in BROWSER_TYPES:
        extension = image.content_type.split("/")[1]
        response: HttpResponseBase = FileResponse(
            original, content_type=image.content_type, filename=f"{image.md5}.{extension}"
        )
    else:
        with original:
            data = original.read()
        try:
            rendition = thumbnails.render_one(data, THUMB_SIZE if thumb else LARGE_SIZE)
        except (OSError, ValueError) as exc:
            raise Http404(f"the original cannot be decoded: {exc}") from None
        response = HttpResponse(rendition.data, content_type=rendition.content_type)
        response["Content-Disposition"] = f'inline; filename="{image.md5}.jpg"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


# --- Decisions ----------------------------------------------------------------------------


class ReasonForm(forms.Form):
    """A reason from a short list, with free text (required for "Other")."""

    reason = forms.ChoiceField(choices=REJECT_REASONS)
    note = forms.CharField(
        required=False,
        max_length=500,
        label="Details",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]] = REJECT_REASONS, **kwargs: Any):
        super().__init__(*args, **kwargs)
        reason = self.fields["reason"]
        assert isinstance(reason, forms.ChoiceField)
        reason.choices = [("", "Choose a reason…"), *choices]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reason") == "Other" and not data.get("note", "").strip():
            raise forms.ValidationError("Say why the image is refused.")
        return data

    @property
    def text(self) -> str:
        reason, note = self.cleaned_data["reason"], self.cleaned_data["note"].strip()
        if reason == "Other":
            return note
        return f"{reason}: {note}" if note else reason


def not_changed_message(image: Image) -> SafeString:
    """What a moderator sees when someone (or something) else decided first."""
    image.refresh_from_db(fields=["state", "decided_by", "decision_reason"])
    who = f" by {image.decided_by.get_username()}" if image.decided_by is not None else ""
    return format_html(
        "Image {} was not changed: it is already {}{}.",
        image.md5,
        image.get_state_display().lower(),
        who,
    )


def next_in_queue(after: Image) -> Image | None:
    return Image.objects.awaiting_review().exclude(pk=after.pk).only("pk").first()


Decision = Callable[[Image, str], bool]


def decide(
    model_admin: Any,
    request: HttpRequest,
    image: Image,
    decision: Decision,
    form: ReasonForm | None = None,
) -> HttpResponse:
    """Apply one moderator's decision to one image, say what happened, and move on to the next
    image in the queue when this one left it."""
    if form is not None and not form.is_valid():
        errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        model_admin.message_user(request, f"Nothing was changed: {errors}", messages.ERROR)
        return HttpResponseRedirect(image_url("change", image.pk))
    before = image.state
    if not decision(image, form.text if form is not None else ""):
        model_admin.message_user(request, not_changed_message(image), messages.WARNING)
        return HttpResponseRedirect(image_url("change", image.pk))
    done = format_html("Image {} is now {}.", image.md5, image.get_state_display().lower())
    model_admin.message_user(request, done, messages.SUCCESS)
    following = next_in_queue(image) if before == State.IN_REVIEW else None
    return HttpResponseRedirect(image_url("change", (following or image).pk))


def apply_all(
    model_admin: Any,
    request: HttpRequest,
    images: Iterable[Image],
    decision: Callable[[Image], bool],
    past: str,
) -> None:
    """A bulk action: each image through its own transition; the refused ones are named."""
    changed: list[Image] = []
    unchanged: list[Image] = []
    for image in images:
        (changed if decision(image) else unchanged).append(image)
    if changed:
        model_admin.message_user(
            request, f"{plural_images(len(changed))} {past}.", messages.SUCCESS
        )
    for image in unchanged:
        model_admin.message_user(request, not_changed_message(image), messages.WARNING)


def ask_reason(
    model_admin: Any,
    request: HttpRequest,
    queryset: QuerySet[Image],
    *,
    action: str,
    verb: str,
    past: str,
    choices: list[tuple[str, str]],
    decision: Decision,
    notice: str = "",
) -> TemplateResponse | None:
    """A bulk action that needs a reason: an intermediate page asks for it (with `notice`,
    what the moderator must know before confirming), then applies."""
    form = ReasonForm(request.POST if "confirm" in request.POST else None, choices=choices)
    if form.is_bound and form.is_valid():
        apply_all(model_admin, request, queryset, lambda image: decision(image, form.text), past)
        return None
    images = list(queryset)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{verb} {plural_images(len(images))}",
        "opts": model_admin.opts,
        "images": [(image, preview_tag(image.pk, size=80)) for image in images],
        "form": form,
        "action": action,
        "verb": verb,
        "notice": notice,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/uploads/image/action_reason.html", context)


# --- Export -------------------------------------------------------------------------------

# (column, header); `details` is read as JSON text, so it is not parsed only to be re-encoded.
EXPORT_COLUMNS = (
    ("at", "at"),
    ("image_id", "image_id"),
    ("image__md5", "md5"),
    ("image__user_id", "uploader"),
    ("image__imageable_type", "imageable_type"),
    ("image__imageable_id", "imageable_id"),
    ("kind", "kind"),
    ("from_state", "from_state"),
    ("to_state", "to_state"),
    ("actor", "actor"),
    ("reason", "reason"),
    ("details_text", "details"),
)
ROWS_PER_CHUNK = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        # A spreadsheet would run a cell starting with these as a formula.
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def csv_chunks(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """CSV text, a few hundred rows per chunk (one chunk per row costs more than the rows)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for _, header in EXPORT_COLUMNS])
    for count, row in enumerate(rows, 1):
        writer.writerow([_cell(value) for value in row])
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_events(events: QuerySet[ImageEvent]) -> StreamingHttpResponse:
    """Stream the events as CSV, reading them from the database a chunk at a time."""
    rows = (
        events.annotate(details_text=Cast("details", output_field=TextField()))
        .values_list(*(column for column, _ in EXPORT_COLUMNS))
        .iterator(chunk_size=EXPORT_CHUNK_SIZE)
    )
    response = StreamingHttpResponse(csv_chunks(rows), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="image-events-{stamp}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- Dashboard ----------------------------------------------------------------------------


def dashboard_numbers() -> dict[str, Any]:
    """Images per state, the review queue and today's rejections and failures: 3 queries."""
    per_state = dict(
        Image.objects.order_by()
        .values_list("state")
        .annotate(count=Count("pk"))
        .values_list("state", "count")
    )
    oldest = Image.objects.awaiting_review().values_list("state_changed_at", flat=True).first()
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    today = dict(
        ImageEvent.objects.filter(
            kind=EventKind.TRANSITION,
            at__gte=midnight,
            to_state__in=[State.REJECTED, State.FAILED, State.TAKEN_DOWN],
        )
        .order_by()
        .values("to_state")
        .annotate(n=Count("pk"))
        .values_list("to_state", "n")
    )
    return {
        "states": [(value, label, per_state.get(value, 0)) for value, label in State.choices],
        "queue_length": per_state.get(State.IN_REVIEW, 0),
        "oldest_waiting": timezone.now() - oldest if oldest else None,
        "rejected_today": today.get(State.REJECTED, 0),
        "failed_today": today.get(State.FAILED, 0),
        "taken_down_today": today.get(State.TAKEN_DOWN, 0),
    }


def short_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def labels_html(result: ModerationResult) -> str:
    labels = result.labels if isinstance(result.labels, list) else []
    return format_html_join(
        " ",
        '<span class="mod-label">{} <b>{}%</b></span>',
        (
            (label.get("name", "?"), f"{float(label.get('confidence') or 0):.1f}")
            for label in labels
            if isinstance(label, dict)
        ),
    )


def moderation_summary(result: ModerationResult) -> str:
    """Labels with confidences and the outcome; for a blocklist hit, the image it resembles."""
    outcome = result.get_outcome_display() if result.outcome else "error"
    summary = format_html(
        '{} <small class="mod-outcome">{}</small>', labels_html(result) or "no labels", outcome
    )
    if result.bank_entry_id is not None and result.bank_entry is not None:
        summary = format_html(
            '{}<div class="bank-hit">Hash bank <a href="{}">{}</a>, entry <a href="{}">#{}</a> '
            "(distance {})</div>",
            summary,
            reverse("admin:moderation_bank_change", args=[result.bank_entry.bank_id]),
            result.bank_entry.bank.name,
            reverse("admin:moderation_bankentry_change", args=[result.bank_entry.pk]),
            result.bank_entry.pk,
            "?" if result.bank_distance is None else result.bank_distance,
        )
    blocked = result.blocked_image
    if blocked is None:
        return summary
    source = preview_tag(blocked.source_image_id, size=60) if blocked.source_image_id else ""
    return format_html(
        '{}<div class="blocklist-hit">{}<br>Resembles <a href="{}" title="{}">blocked {}…</a> '
        "(distance {})</div>",
        summary,
        source,
        reverse("admin:moderation_blockedimage_change", args=[blocked.pk]),
        blocked.sha256,
        blocked.sha256[:12],
        "?" if result.blocklist_distance is None else result.blocklist_distance,
    )
