from __future__ import annotations

from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from moderation import tasks
        from moderation.blocking import block_image
        from uploads import pipeline, transitions
        from uploads.models import MODERATION, State

        pipeline.register_actor(MODERATION, tasks.moderate_image)
        # A rejected image's bytes and look may not come back; the entry is written in the
        # rejection's transaction (a storage error rolls the rejection back).
        transitions.after(State.REJECTED, "blocklist", block_image)
