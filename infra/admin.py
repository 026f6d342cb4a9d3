"""Admin building blocks shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest, ValidationError
from django.db import DataError, models
from django.http import HttpRequest

# What the stock list filters and the date hierarchy put in the query string.
FILTER_SUFFIXES = ("exact", "isnull", "isempty", "gte", "lt", "year", "month", "day")


class ReadOnly:
    """Rows written by the pipeline: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeclaredLookupsOnly:
    """A list filtered only by the filters it declares (and equality on a foreign key, which
    the admin's own links use): no `description__regex` from the query string. A parameter
    the list cannot apply is a bad request (400), never a server error."""

    model: type[models.Model]
    date_hierarchy: str | None

    def allowed_lookups(self, request: HttpRequest) -> set[str]:
        allowed: set[str] = set()
        for item in self.get_list_filter(request):  # type: ignore[attr-defined]
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                allowed.add(item.parameter_name or "")
                continue
            path = item[0] if isinstance(item, list | tuple) else item
            allowed.update(f"{path}__{suffix}" for suffix in FILTER_SUFFIXES)
            allowed.update(f"{path}__{pk}__exact" for pk in ("id", "pk"))
        if self.date_hierarchy:
            allowed.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
        for field in self.model._meta.get_fields():
            if isinstance(field, models.ForeignKey):
                target = field.target_field.name
                allowed.update(
                    {field.attname, f"{field.name}__exact", f"{field.name}__{target}__exact"}
                )
        return allowed

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return request is not None and lookup in self.allowed_lookups(request)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        try:
            return super().get_changelist_instance(request)  # type: ignore[misc]
        except (IncorrectLookupParameters, ValidationError, ValueError, DataError) as exc:
            raise BadRequest(f"This list cannot be shown with these parameters: {exc}") from exc
