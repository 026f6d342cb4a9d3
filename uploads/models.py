"""The image record, its state machine and its append-only history.

Every transition is a conditional UPDATE on the current state inside a transaction that also
writes the audit event, so two workers, a redelivered message or two moderators can never apply
the same transition twice. See the state diagram in the README.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from uploads import transitions
from uploads.events import Actor, EventKind, ImageEvent, record_event
from uploads.states import (
    DECIDABLE_STATES,
    FINAL_STATES,
    MODERATION,
    PUBLISHING,
    RESTORABLE_STATES,
    SHOWING_STATES,
    STAGES,
    Stage,
    State,
)

# The core's vocabulary, importable from here as from any Django app's models.
__all__ = [
    "DECIDABLE_STATES",
    "FINAL_STATES",
    "MODERATION",
    "PUBLISHING",
    "RESTORABLE_STATES",
    "SHOWING_STATES",
    "STAGES",
    "Actor",
    "EventKind",
    "Image",
    "ImageEvent",
    "ImageQuerySet",
    "Stage",
    "State",
    "record_event",
]


class ImageQuerySet(models.QuerySet["Image"]):
    def awaiting_review(self) -> ImageQuerySet:
        return self.filter(state=State.IN_REVIEW).order_by("state_changed_at")

    def same_bytes(self, image: Image) -> ImageQuerySet:
        """The other images of `image`'s bytes (other pins, other uploaders)."""
        return self.filter(sha256=image.sha256).exclude(pk=image.pk)

    def showing(self) -> ImageQuerySet:
        return self.filter(state__in=SHOWING_STATES)

    def stale(self, now: Any = None, *, quiet_for: float | None = None) -> ImageQuerySet:
        """Images whose background work should have moved by now (lost message, dead worker)."""
        now = now or timezone.now()
        quiet_for = settings.STALE_AFTER_SECONDS if quiet_for is None else quiet_for
        cutoff = now - timedelta(seconds=quiet_for)
        quiet = Q(state_changed_at__lte=cutoff) & (
            Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=cutoff)
        )
        pending = Q(state__in=[s.pending for s in STAGES]) & quiet
        abandoned = Q(state__in=[s.working for s in STAGES]) & (
            (Q(lease_until__lte=now) & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=cutoff)))
            | (Q(lease_until__isnull=True) & quiet)
        )
        return self.filter(pending | abandoned)


class Image(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    # Who and what it belongs to, from the upload token.
    user_id = models.CharField(max_length=64, db_index=True)
    imageable_type = models.CharField(max_length=64)
    imageable_id = models.CharField(max_length=64, db_index=True)
    name = models.CharField(max_length=140, blank=True)
    description = models.CharField(max_length=140, blank=True)
    featured = models.DateTimeField(null=True, blank=True)

    # The bytes as uploaded.
    md5 = models.CharField(max_length=32, db_index=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    format = models.CharField(max_length=8)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    frame_count = models.PositiveIntegerField(default=1)
    request_id = models.CharField(max_length=64, blank=True)

    # Where it is in the pipeline.
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    state_changed_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)  # last re-enqueue by the reconciler
    attempts = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    renditions = models.JSONField(default=list, blank=True)  # keys of the published objects
    published_at = models.DateTimeField(null=True, blank=True)
    # A placeholder to paint before the image loads, made from a thumbnail at publication.
    blurhash = models.CharField(max_length=64, blank=True)
    dominant_color = models.CharField(max_length=7, blank=True)  # "#rrggbb"
    # Where a fill crop should centre, as fractions of the upright width and height.
    focal_x = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    focal_y = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )

    objects = ImageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sha256", "imageable_type", "imageable_id"], name="one_image_per_imageable"
            )
        ]
        indexes = [models.Index(fields=["state", "state_changed_at"])]
        permissions = [("moderate_image", "Can approve, reject and take down images")]

    def __str__(self) -> str:
        return f"{self.md5} ({self.get_state_display()})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    # --- Transitions ------------------------------------------------------------------------

    def _transition(
        self,
        *,
        from_states: Iterable[str],
        to: State,
        actor: str,
        user: Any = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Move to `to` if the image is in one of `from_states`; False if it was not. The steps
        registered for `to` (uploads.transitions) run in the same transaction."""
        now = timezone.now()
        with transaction.atomic():
            current = (
                Image.objects.select_for_update()
                .filter(pk=self.pk, state__in=list(from_states))
                .values_list("state", flat=True)
                .first()
            )
            if current is None:
                return False
            values = {"state": to, "state_changed_at": now, "lease_until": None, **(fields or {})}
            if to != current:
                values.setdefault("attempts", 0)
            Image.objects.filter(pk=self.pk, state=current).update(**values)
            for name, value in values.items():
                setattr(self, name, value)
            record_event(
                self.pk,
                EventKind.TRANSITION,
                actor=actor,
                from_state=current,
                to_state=to,
                user=user,
                reason=reason,
                details=details,
            )
            transitions.run_after(self, current)
        return True

    def claim(self, stage: Stage, *, lease_seconds: int) -> bool:
        """Take the stage's work for one attempt under a lease of `lease_seconds` (renewed by
        `renew_lease` while the work runs); False if done, taken or given up. Safe to run
        twice."""
        now = timezone.now()
        with transaction.atomic():
            row = (
                Image.objects.select_for_update()
                .filter(pk=self.pk)
                .filter(
                    Q(state=stage.pending)
                    | Q(state=stage.working, lease_until__isnull=True)
                    | Q(state=stage.working, lease_until__lt=now)
                )
                .values_list("state", "attempts")
                .first()
            )
            if row is None:
                return False
            current, attempts = row
            if attempts >= settings.MAX_STAGE_ATTEMPTS:
                reason = f"{stage.name} gave up after {attempts} attempts"
                self.give_up(stage, reason=reason, from_state=current)
                return False
            Image.objects.filter(pk=self.pk, state=current).update(
                state=stage.working,
                attempts=F("attempts") + 1,
                lease_until=now + timedelta(seconds=lease_seconds),
                state_changed_at=now,
            )
            record_event(
                self.pk,
                EventKind.TRANSITION if current == stage.pending else EventKind.RETRY,
                actor=Actor.system(stage.actor_name),
                from_state=current,
                to_state=stage.working,
                details={"attempt": attempts + 1},
            )
        self.refresh_from_db(fields=["state", "attempts", "lease_until", "state_changed_at"])
        return True

    def renew_lease(self, stage: Stage, *, lease_seconds: int) -> bool:
        """Extend this attempt's lease (the heartbeat of a running task). False once the
        attempt is no longer this one's: finished, taken down, or claimed by another worker
        after the lease ran out."""
        until = timezone.now() + timedelta(seconds=lease_seconds)
        held = Image.objects.filter(
            pk=self.pk, state=stage.working, attempts=self.attempts, lease_until__isnull=False
        )
        return bool(held.update(lease_until=until))

    def release(self, stage: Stage, *, error: str) -> None:
        """Give the claimed work back after a failed attempt, so a retry can claim it at once."""
        with transaction.atomic():
            if Image.objects.filter(pk=self.pk, state=stage.working).update(lease_until=None):
                record_event(
                    self.pk,
                    EventKind.ATTEMPT_FAILED,
                    actor=Actor.system(stage.actor_name),
                    from_state=stage.working,
                    to_state=stage.working,
                    reason=error[:1000],
                )

    def give_up(self, stage: Stage, *, reason: str, from_state: str | None = None) -> bool:
        states = [from_state] if from_state else [stage.pending, stage.working]
        return self._transition(
            from_states=states,
            to=stage.give_up,
            actor=Actor.system(stage.actor_name),
            reason=reason,
            fields={"failure_reason": reason},
        )

    def moderated(self, outcome: State, *, reason: str, details: dict[str, Any]) -> bool:
        """Record the automatic moderation's outcome (approved, in review or rejected)."""
        return self._transition(
            from_states=[State.MODERATING],
            to=outcome,
            actor=Actor.MODERATE_IMAGE,
            reason=reason,
            details=details,
            fields={"decision_reason": reason},
        )

    def approve(self, *, by: Any, reason: str = "") -> bool:
        """A moderator's approval of an image waiting for review."""
        return self._transition(
            from_states=DECIDABLE_STATES,
            to=State.APPROVED,
            actor=Actor.user(by),
            user=by,
            reason=reason,
            fields={"decided_by": by, "decision_reason": reason},
        )

    def reject(
        self,
        *,
        by: Any,
        reason: str,
        actor: str = "",
        details: dict[str, Any] | None = None,
    ) -> bool:
        """A moderator's rejection: the uploader is told and the image is blocklisted. `by` is
        the moderator (None for an operator's script, named by `actor`)."""
        return self._transition(
            from_states=DECIDABLE_STATES,
            to=State.REJECTED,
            actor=actor or Actor.user(by),
            user=by,
            reason=reason,
            details=details,
            fields={"decided_by": by, "decision_reason": reason},
        )

    def published(
        self, *, renditions: list[str], placeholder: dict[str, str] | None = None
    ) -> bool:
        """`placeholder`: the `blurhash` and `dominant_color` made at publication, if any."""
        fields = {"renditions": renditions, "published_at": timezone.now(), "failure_reason": ""}
        return self._transition(
            from_states=[State.PUBLISHING],
            to=State.PUBLISHED,
            actor=Actor.MAKE_THUMBNAILS,
            details={"renditions": renditions},
            fields={**fields, **(placeholder or {})},
        )

    def take_down(
        self,
        *,
        by: Any,
        reason: str,
        actor: str = "",
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Unpublish an approved image that was reported: public objects go, its bytes are
        blocklisted, Pinster is told. `by` is the moderator (None for an operator's script,
        named by `actor`). Other images of the same bytes: uploads.services.take_down_content."""
        return self._transition(
            from_states=SHOWING_STATES,
            to=State.TAKEN_DOWN,
            actor=actor or Actor.user(by),
            user=by,
            reason=reason,
            details=details,
            fields={"decided_by": by, "decision_reason": reason},
        )

    def restore(self, *, by: Any, reason: str, actor: str = "") -> bool:
        """Take back a rejection or a takedown: the bytes are unblocked (moderation's step on
        this transition), the image is published again and Pinster is told of it anew."""
        if not reason.strip():
            raise ValueError("a restore needs a reason")
        return self._transition(
            from_states=RESTORABLE_STATES,
            to=State.APPROVED,
            actor=actor or Actor.user(by),
            user=by,
            reason=reason,
            details={"restored": True},
            fields={"decided_by": by, "decision_reason": reason, "failure_reason": ""},
        )

    def failed_stage(self) -> Stage:
        """The stage a failed image was in when it failed, from its history (publishing
        when the history does not say)."""
        last = (
            self.events.filter(kind=EventKind.TRANSITION, to_state=State.FAILED)
            .order_by("-at", "-id")
            .values_list("from_state", flat=True)
            .first()
        )
        for stage in STAGES:
            if last in (stage.pending, stage.working):
                return stage
        return PUBLISHING

    def retry(self, *, actor: str, by: Any = None, reason: str = "") -> bool:
        """Put a failed image back at the start of the stage that failed, with fresh attempts
        (its registered step enqueues the work). False if it is not failed."""
        stage = self.failed_stage()
        return self._transition(
            from_states=[State.FAILED],
            to=stage.pending,
            actor=actor,
            user=by,
            reason=reason or f"{stage.name} retried",
            details={"retry_of": stage.name, "failure_reason": self.failure_reason[:1000]},
            fields={"failure_reason": "", "enqueued_at": None},
        )

    def fail(self, *, reason: str, actor: str) -> bool:
        nonfinal = [s for s in State if s not in FINAL_STATES and s != State.IN_REVIEW]
        return self._transition(
            from_states=nonfinal,
            to=State.FAILED,
            actor=actor,
            reason=reason,
            fields={"failure_reason": reason},
        )

    # --- Storage keys (contract: originals `<md5>`, private copy under `raw/`) -------------

    @property
    def original_key(self) -> str:
        return self.md5
