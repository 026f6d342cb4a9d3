"""The admin site of the service: its titles, the review workspace's pages under
`<ADMIN_PATH>review/`, refusals shown as admin pages, and list lookups limited to the
declared filters on every registered model."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from infra.admin import DeclaredLookupsOnly
from moderation.console import dashboard, grid, workspace

log = logging.getLogger(__name__)

REFUSALS: tuple[tuple[type[Exception], int, str], ...] = (
    (PermissionDenied, 403, "Not allowed"),
    (Http404, 404, "Not found"),
    (BadRequest, 400, "Bad request"),
    (SuspiciousOperation, 400, "Bad request"),
)
MESSAGES = {
    403: "Your account may not do this. Ask an administrator for the role you need.",
    404: "There is nothing here: it may have been removed, or the address is mistyped.",
    400: "The page cannot be shown for this address.",
}


class ConsoleSite(admin.AdminSite):
    site_header = "ImageService moderation"
    site_title = "ImageService admin"
    index_title = "Moderation and operations"
    site_url = None  # the service has no web site of its own to link to
    # The breadcrumbs and the index lead everywhere; the sidebar's 300 px go to the lists.
    enable_nav_sidebar = False

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, DeclaredLookupsOnly):
            admin_class = type(
                admin_class.__name__,
                (DeclaredLookupsOnly, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        super().register(model_or_iterable, admin_class, **options)

    def refused(self, request: HttpRequest, status: int, title: str, detail: str) -> HttpResponse:
        context = {
            **self.each_context(request),
            "title": title,
            "message": MESSAGES[status],
            "detail": detail,
        }
        return TemplateResponse(request, "admin/refused.html", context, status=status)

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Any:
        @functools.wraps(view)
        def refusals_as_pages(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                if any("\x00" in k + "".join(v) for k, v in request.GET.lists()):
                    # No database stores it, and PostgreSQL refuses it in a query.
                    raise BadRequest("A NUL character in the query string.")
                return view(request, *args, **kwargs)
            except tuple(kind for kind, _, _ in REFUSALS) as exc:
                status, title = next((s, t) for k, s, t in REFUSALS if isinstance(exc, k))
                log.info("admin refused %s: %s %s", request.path, status, exc)
                detail = str(exc) if status == 400 else ""
                return self.refused(request, status, title, detail)

        return super().admin_view(refusals_as_pages, cacheable)

    def get_urls(self) -> list[Any]:
        def page(view: Callable[..., Any]) -> Callable[..., Any]:
            """A whole page: the view gets the admin's context (header, titles, user links)."""
            return lambda request, *a, **k: view(request, self.each_context(request), *a, **k)

        view = self.admin_view
        return [
            path("review/", view(page(workspace.workspace_view)), name="review"),
            path("review/next/", view(workspace.next_view), name="review_next"),
            path(
                "review/<uuid:image_id>/decide/",
                view(workspace.decide_view),
                name="review_decide",
            ),
            path("review/release/", view(workspace.release_view), name="review_release"),
            path("review/renew/", view(workspace.renew_view), name="review_renew"),
            path(
                "review/preferences/",
                view(page(workspace.preferences_view)),
                name="review_preferences",
            ),
            path("review/grid/", view(page(grid.grid_view)), name="review_grid"),
            path("review/grid/decide/", view(page(grid.decide_view)), name="review_grid_decide"),
            path(
                "review/dashboard/", view(page(dashboard.dashboard_view)), name="review_dashboard"
            ),
            *super().get_urls(),
        ]
