from __future__ import annotations

from django.apps import AppConfig


class ImageServiceConfig(AppConfig):
    """The composition root as an app: it holds the commands that span every app (serve,
    check_integrity) and imports any of them; no app imports it."""

    name = "imageservice"
    verbose_name = "ImageService"

    def ready(self) -> None:
        from django.core import checks

        from imageservice.checks import check_settings
        from imageservice.metrics import database_metrics
        from infra.metrics import register_source

        register_source("database", database_metrics)
        # Settings parsed by the apps are validated at start-up: `manage.py check` names them.
        checks.register(check_settings, "settings")
