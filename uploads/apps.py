from __future__ import annotations

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Images"

    def ready(self) -> None:
        from uploads import schema  # noqa: F401  registers the OpenAPI auth extension
