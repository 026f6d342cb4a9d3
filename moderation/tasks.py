"""Automatic moderation of received images."""

from __future__ import annotations

import dramatiq
from django.conf import settings

from moderation import services
from uploads.models import MODERATION, Image
from uploads.pipeline import run_stage

MODERATION_TIME_LIMIT_MS = 120_000


@dramatiq.actor(
    queue_name="moderation",
    max_retries=settings.MAX_STAGE_ATTEMPTS,
    min_backoff=2_000,
    max_backoff=60_000,
    time_limit=MODERATION_TIME_LIMIT_MS,
)
def moderate_image(image_id: str) -> None:
    """Moderate a received image and move it to approved, in review or rejected. Safe to run
    twice. Errors are retried; once attempts are exhausted the image goes to human review
    (fail closed), never to approved."""
    run_stage(image_id, MODERATION, moderate)


def moderate(image: Image) -> None:
    decision = services.moderate(image)
    image.moderated(decision.outcome, reason=decision.reason, details=decision.details)
