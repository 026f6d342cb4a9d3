from __future__ import annotations

from django.apps import AppConfig


class PublishingConfig(AppConfig):
    name = "publishing"
    verbose_name = "Publishing"

    def ready(self) -> None:
        from django.conf import settings
        from django.db import transaction

        from infra.broker import send_safely
        from publishing import imaging, tasks
        from uploads import pipeline, transitions
        from uploads.models import PUBLISHING, Image, State

        imaging.DECODE_BUDGET.limit = settings.DECODE_PIXEL_BUDGET
        pipeline.register_actor(PUBLISHING, tasks.make_thumbnails)

        def release_public_objects(image: Image) -> None:
            """Once it leaves the way to publication for good, its public objects go, unless
            another image of the same bytes shows them (services.release_public_objects)."""
            image_id = str(image.pk)
            transaction.on_commit(lambda: send_safely(tasks.unpublish_image, image_id))

        transitions.after(State.TAKEN_DOWN, "remove public objects", release_public_objects)
        transitions.after(State.FAILED, "remove public objects", release_public_objects)
