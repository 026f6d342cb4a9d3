"""List filters and the exact-match search of the image and event lists in the admin."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from moderation.models import ModerationResult
from uploads.models import State

QUEUE = "queue"
RECENT_RESULTS = 500


def exact_search(queryset: QuerySet[Any], term: str, prefix: str = "") -> QuerySet[Any]:
    """Exact matches of md5, sha256, image id, uploader id or imageable id: each uses an
    index, where the admin's own `=field` search compares UPPER() of every row."""
    term = term.strip()
    match = Q(**{f"{prefix}user_id": term}) | Q(**{f"{prefix}imageable_id": term})
    if len(term) in (32, 64):
        match |= Q(**{f"{prefix}md5": term.lower()}) | Q(**{f"{prefix}sha256": term.lower()})
    with contextlib.suppress(ValueError):  # not an image id
        match |= Q(**{f"{prefix}id": uuid.UUID(term)})
    return queryset.filter(match)


class ShowFilter(admin.SimpleListFilter):
    """The review queue unless asked otherwise: all images, or those in one state."""

    title = "state"
    parameter_name = "show"

    @staticmethod
    def titles() -> dict[str, str]:
        states = {value: f"Images: {label.lower()}" for value, label in State.choices}
        return {QUEUE: "Review queue", "all": "All images", **states}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(QUEUE, "Review queue"), ("all", "All images"), *State.choices]

    def value(self) -> str:
        return super().value() or QUEUE

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == QUEUE:
            return queryset.awaiting_review()  # type: ignore[attr-defined]
        return queryset if value == "all" else queryset.filter(state=value)


class LabelFilter(admin.SimpleListFilter):
    """Images with a moderation label (or a child of it). The choices are the labels of the
    latest results: one bounded query, however long the history."""

    title = "moderation label"
    parameter_name = "label"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = ModerationResult.objects.order_by("-created_at").values_list("labels", flat=True)
        value = self.value()
        names: set[str] = {value} if value else set()
        for labels in recent[:RECENT_RESULTS]:
            for label in labels if isinstance(labels, list) else []:
                if isinstance(label, dict):
                    names.update(str(label[k]) for k in ("name", "parent") if label.get(k))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        # Containment of the JSON string in the JSON text: works on PostgreSQL and SQLite.
        needle = json.dumps(self.value(), ensure_ascii=False)
        results = ModerationResult.objects.filter(image=OuterRef("pk"), labels__icontains=needle)
        return queryset.filter(Exists(results))


class BackendFilter(admin.SimpleListFilter):
    """The backends of the latest results (a DISTINCT over every result grows with them)."""

    title = "moderation backend"
    parameter_name = "backend"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = ModerationResult.objects.order_by("-created_at").values_list("backend", flat=True)
        chosen = self.value()
        backends: set[str] = {*recent[:RECENT_RESULTS], *([chosen] if chosen else [])}
        return [(path, path.rsplit(".", 1)[-1]) for path in sorted(backends)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        results = ModerationResult.objects.filter(image=OuterRef("pk"), backend=self.value())
        return queryset.filter(Exists(results))


class ValueFilter(admin.SimpleListFilter):
    """A filter set from a link (an image's or uploader's history): shows the current value
    and a way back to all, without listing every possible value."""

    lookup = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.lookup: value}) if value else queryset


class EventImageFilter(ValueFilter):
    title = "image"
    parameter_name = "image"
    lookup = "image_id"  # a value that is not a UUID gets the admin's "invalid filter" page


class EventUploaderFilter(ValueFilter):
    title = "uploader"
    parameter_name = "uploader"
    lookup = "image__user_id"


class ImageUploaderFilter(ValueFilter):
    """An uploader's images (the uploader column links here); listed only when chosen."""

    title = "uploader"
    parameter_name = "user_id"
    lookup = "user_id"

    def has_output(self) -> bool:
        return bool(self.value())


class EventActorFilter(ValueFilter):
    title = "actor"
    parameter_name = "actor"
    lookup = "actor"


class ModeratorFilter(admin.SimpleListFilter):
    """Decisions and other actions of one staff member."""

    title = "moderator"
    parameter_name = "moderator"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(str(user.pk), user.get_username()) for user in staff]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters(f"{value!r} is not a staff member's number")
        return queryset.filter(user_id=value)


class ActorTypeFilter(admin.SimpleListFilter):
    title = "done by"
    parameter_name = "by"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("user", "Staff"), ("system", "The pipeline"), ("uploader", "Uploaders")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in ("user", "system", "uploader"):
            return queryset
        return queryset.filter(actor__startswith=f"{value}:")
