from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from infra import health, metrics

urlpatterns = [
    path(settings.ADMIN_PATH, admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema"), name="docs"),
    # infra.health.ProbeMiddleware answers the probes first, for any Host header.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("uploads.urls")),
    path("", include("publishing.urls")),
]

handler400 = "infra.errors.handler400"
handler403 = "infra.errors.handler403"
handler404 = "infra.errors.handler404"
handler500 = "infra.errors.handler500"
