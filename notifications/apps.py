from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications to PinsterApi"

    def ready(self) -> None:
        from notifications.models import Notification
        from uploads import transitions
        from uploads.models import State

        def notify(kind: str) -> transitions.Step:
            return lambda image: Notification.objects.create_for(image, kind)

        # Written in the decision's transaction: the outbox holds it exactly when it is true.
        transitions.after(State.REJECTED, "notify rejection", notify(Notification.Kind.REJECTED))
        transitions.after(State.PUBLISHED, "notify approval", notify(Notification.Kind.APPROVED))
        transitions.after(State.TAKEN_DOWN, "notify takedown", notify(Notification.Kind.TAKEN_DOWN))
