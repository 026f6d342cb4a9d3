"""An image's states, the sets of them the rules speak of, and the stages of background work."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class State(models.TextChoices):
    RECEIVED = "received", "Received"
    MODERATING = "moderating", "Moderating"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    PUBLISHING = "publishing", "Publishing"
    PUBLISHED = "published", "Published"
    REJECTED = "rejected", "Rejected"
    TAKEN_DOWN = "taken_down", "Taken down"
    FAILED = "failed", "Failed"


FINAL_STATES = frozenset({State.PUBLISHED, State.REJECTED, State.TAKEN_DOWN, State.FAILED})
DECIDABLE_STATES = frozenset({State.IN_REVIEW})
# Shown, or on the way to being shown, at the public keys of its bytes: what a takedown removes.
SHOWING_STATES = frozenset({State.PUBLISHED, State.APPROVED, State.PUBLISHING})
# A moderator's refusal that a restore may take back.
RESTORABLE_STATES = frozenset({State.REJECTED, State.TAKEN_DOWN})


@dataclass(frozen=True)
class Stage:
    """A piece of background work: claimed from `pending`, held in `working` under a lease."""

    name: str
    pending: State
    working: State
    give_up: State  # where an image goes when its attempts are exhausted
    actor_name: str


MODERATION = Stage(
    "moderation", State.RECEIVED, State.MODERATING, State.IN_REVIEW, "moderate_image"
)
PUBLISHING = Stage("publishing", State.APPROVED, State.PUBLISHING, State.FAILED, "make_thumbnails")
STAGES = (MODERATION, PUBLISHING)
