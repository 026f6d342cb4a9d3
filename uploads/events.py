"""An image's append-only history, who it names, and the one helper that writes it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from uploads.states import State


class EventKind(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    TRANSITION = "transition", "State change"
    RETRY = "retry", "Retry"
    ATTEMPT_FAILED = "attempt_failed", "Attempt failed"
    NOTIFICATION = "notification", "Notification"
    BLOCKLIST = "blocklist", "Blocklist"
    STORAGE = "storage", "Storage"
    RECONCILED = "reconciled", "Re-enqueued by the reconciler"


class ImageEvent(models.Model):
    """Append-only audit history: who or what did what to an image, when and why."""

    image = models.ForeignKey("uploads.Image", on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    from_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    actor = models.CharField(max_length=150)  # "system:<actor>" or "user:<username>"
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["kind", "at"]), models.Index(fields=["actor", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.from_state}→{self.to_state}"


class Actor:
    """Who an audit event names: `system:<actor>`, `user:<moderator>` or `uploader:<id>`."""

    MODERATE_IMAGE = "system:moderate_image"
    MAKE_THUMBNAILS = "system:make_thumbnails"
    UNPUBLISH_IMAGE = "system:unpublish_image"
    NOTIFY_PINSTER = "system:notify_pinster"
    RECONCILER = "system:reconciler"
    PURGE_THUMBNAILS = "system:purge_thumbnails"
    REGENERATE_THUMBNAILS = "system:regenerate_thumbnails"

    @staticmethod
    def system(name: str) -> str:
        return f"system:{name}"

    @staticmethod
    def user(user: Any) -> str:
        return f"user:{user.get_username()}"

    @staticmethod
    def uploader(user_id: Any) -> str:
        return f"uploader:{user_id}"

    @staticmethod
    def of(by: Any, *, otherwise: str) -> str:
        """`user:<name>` for a user, else the system actor `otherwise` (a script's name)."""
        return Actor.user(by) if by is not None else Actor.system(otherwise)


def record_event(
    image_id: Any,
    kind: str,
    *,
    actor: str,
    from_state: str = "",
    to_state: str = "",
    user: Any = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
    at: Any = None,
) -> ImageEvent:
    """Append one event to an image's history: the only way events are written."""
    return ImageEvent.objects.create(
        image_id=image_id,
        at=at or timezone.now(),
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        user=user,
        reason=reason,
        details=details or {},
    )
