from __future__ import annotations

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Images"

    def ready(self) -> None:
        from uploads import pipeline, schema, transitions  # noqa: F401  schema registers the
        from uploads.models import State  # OpenAPI auth extension on import

        # An image that arrives in a stage's pending state is handed to that stage's actor
        # (approved: publishing; received again, after a retry of a failed moderation).
        transitions.after(State.APPROVED, "enqueue publishing", pipeline.enqueue_for_state)
        transitions.after(State.RECEIVED, "enqueue moderation", pipeline.enqueue_for_state)
