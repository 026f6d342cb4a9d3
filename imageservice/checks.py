"""Start-up checks of the settings that settings.py reads as text and the apps parse later
(the moderation policy, the backend's dotted path, thumbnail sizes and formats, colours,
the watermark file). `manage.py check` (and so `migrate`, `serve` and the container's start)
fails with an error naming the variable, instead of every task failing later."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from moderation.policy import parse_policy
from publishing.thumbnails import parse_sizes

THUMBNAIL_FORMATS = {"JPEG", "WEBP"}
IMAGE_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "HEIF"}
COLOUR = re.compile(r"#?[0-9a-fA-F]{6}")


def _policy() -> None:
    parse_policy(settings.MODERATION_POLICY)


def _backend() -> None:
    try:
        import_string(settings.MODERATION_BACKEND)
    except ImportError as exc:
        raise ValueError(f"cannot be imported: {exc}") from None


def _sizes(name: str) -> Callable[[], None]:
    def check() -> None:
        parse_sizes(getattr(settings, name))

    return check


def _choices(name: str, allowed: set[str]) -> Callable[[], None]:
    def check() -> None:
        values = getattr(settings, name)
        unknown = [v for v in values if v not in allowed]
        if not values or unknown:
            raise ValueError(f"must list some of {sorted(allowed)}, not {values!r}")

    return check


def _colour() -> None:
    if not COLOUR.fullmatch(settings.THUMBNAIL_BACKGROUND):
        raise ValueError(f"must be a colour like #ffffff, not {settings.THUMBNAIL_BACKGROUND!r}")


def _watermark() -> None:
    path = settings.WATERMARK_PATH
    if path and not Path(path).is_file():
        raise ValueError(f"{path!r} is not a file")


CHECKS: dict[str, Callable[[], None]] = {
    "MODERATION_POLICY": _policy,
    "MODERATION_BACKEND": _backend,
    "THUMBNAIL_SIZES": _sizes("THUMBNAIL_SIZES"),
    "ON_DEMAND_SIZES": _sizes("ON_DEMAND_SIZES"),
    "THUMBNAIL_FORMATS": _choices("THUMBNAIL_FORMATS", THUMBNAIL_FORMATS),
    "ALLOWED_IMAGE_FORMATS": _choices("ALLOWED_IMAGE_FORMATS", IMAGE_FORMATS),
    "THUMBNAIL_BACKGROUND": _colour,
    "WATERMARK_PATH": _watermark,
}


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for number, (name, check) in enumerate(CHECKS.items(), start=1):
        try:
            check()
        except (ImproperlyConfigured, ValueError) as exc:
            message = str(exc)
            if not message.startswith(name):
                message = f"{name} {message}"
            errors.append(checks.Error(message, id=f"imageservice.E{number:03d}"))
    return errors
