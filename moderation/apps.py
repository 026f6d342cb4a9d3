from __future__ import annotations

import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


class BlockedMeanwhile(Exception):
    """An automatic approval of bytes that were blocked while they were moderated."""


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from moderation import tasks
        from moderation.blocking import block_image, unblock_image
        from moderation.models import BlockedImage
        from uploads import pipeline, transitions
        from uploads.models import MODERATION, RESTORABLE_STATES, Image, State

        pipeline.register_actor(MODERATION, tasks.moderate_image)

        def block_taken_down(image: Image) -> None:
            reason = f"taken down: {image.decision_reason}"
            try:
                block_image(image, reason=reason)
            except Exception:  # storage (botocore's errors are not OSErrors)
                # A takedown does not wait for the store: its exact bytes are blocked now;
                # without the original there is no look to block.
                log.warning("image %s: original unreadable, blocking its bytes only", image.pk)
                BlockedImage.objects.add(image.sha256, [], image, reason, image.decided_by)

        # A rejected or taken-down image's bytes and look may not come back; the entry is
        # written in the decision's transaction (a storage error rolls a rejection back).
        transitions.after(State.REJECTED, "blocklist", block_image)
        transitions.after(State.TAKEN_DOWN, "blocklist", block_taken_down)

        def not_blocked_meanwhile(image: Image) -> None:
            """Bytes blocked (taken down elsewhere) while their moderation ran: the approval
            rolls back and the retry meets the blocklist."""
            blocked = BlockedImage.objects.filter(sha256=image.sha256)
            if blocked.exclude(source_image_id=image.pk).exists():
                raise BlockedMeanwhile(f"image {image.pk}: its bytes were blocked meanwhile")

        transitions.after(
            State.APPROVED,
            "not blocked meanwhile",
            not_blocked_meanwhile,
            from_states=[State.MODERATING],
        )
        # A restore takes the decision back, and with it the blocklist entries of these bytes.
        transitions.after(
            State.APPROVED, "unblock on restore", unblock_image, from_states=RESTORABLE_STATES
        )
