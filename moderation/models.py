"""What automatic moderation decided and why, and the blocklist of rejected images.

`ModerationResult` rows are written by `moderation.services.moderate` and never changed
afterwards. `BlockedImage` rows are written when an image is rejected (by the policy or by a
moderator) and by moderators in the admin; their hashes are computed, never typed in.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from uploads.models import Actor, EventKind, Image, State, record_event


class Trigger(models.TextChoices):
    PIPELINE = "pipeline", "Upload pipeline"
    REMODERATE = "remoderate", "Re-moderation"


class ModerationResult(models.Model):
    """One run of automatic moderation over one image: read-only, append-only."""

    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="moderation_results")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.PIPELINE)
    backend = models.CharField(max_length=200)  # dotted path of the backend class
    model_version = models.CharField(max_length=200, blank=True)
    # [{"name", "parent", "confidence" (0-100)}], as the backend reported them.
    labels = models.JSONField(default=list, blank=True)
    raw = models.JSONField(default=dict, blank=True)  # backend-specific extras (scores, request)
    policy = models.JSONField(default=dict, blank=True)  # the thresholds in force
    # Blank when the run failed with an error that is retried (no decision was made).
    outcome = models.CharField(max_length=16, choices=State.choices, blank=True)
    reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    blocked_image = models.ForeignKey(
        "BlockedImage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="matches",
        help_text="The blocklist entry this image matched, if any.",
    )
    blocklist_distance = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["image", "-created_at"])]

    def __str__(self) -> str:
        outcome = self.get_outcome_display() if self.outcome else "error"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.backend.rsplit('.', 1)[-1]}: {outcome}"


def to_signed64(value: int) -> int:
    """A 64-bit hash as PostgreSQL's signed bigint stores it."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class BlockedImageManager(models.Manager["BlockedImage"]):
    def add_from_image(
        self, image: Image, *, reason: str = "", added_by: Any = None
    ) -> BlockedImage:
        """Blocklist an image's bytes and look, by default with the reason and moderator of
        its rejection. Safe to run twice: an image already on the list keeps its entry. Reads
        the original from private storage unless moderation just hashed it; a storage error
        raises (the rejection that called it rolls back)."""
        from moderation import blocklist

        existing = self.filter(sha256=image.sha256).first()
        if existing is not None:
            return existing
        hashes = blocklist.hashes_of_image(image)
        reason = reason or image.decision_reason
        return self._add(image.sha256, hashes, image, reason, added_by or image.decided_by)

    def remove_for_image(self, image: Image) -> int:
        """Unblock an image's bytes (a restore): the entry of its sha256 goes, with an event on
        the image's timeline. Returns how many entries were removed (0 or 1)."""
        removed = list(self.filter(sha256=image.sha256).values_list("pk", flat=True))
        if removed:
            self.filter(pk__in=removed).delete()
            record_event(
                image.pk,
                EventKind.BLOCKLIST,
                actor=Actor.of(image.decided_by, otherwise="restore"),
                user=image.decided_by,
                reason="unblocked: restored",
                details={"removed_entries": removed},
            )
        return len(removed)

    def add_from_bytes(
        self, data: bytes, *, reason: str = "", added_by: Any = None, source_image: Any = None
    ) -> BlockedImage:
        """Blocklist an image that was never uploaded here (e.g. a file a moderator has).
        Safe to run twice. Raises ValueError when `data` is not an image Pillow can read."""
        from moderation import blocklist

        hashes = blocklist.hashes_of_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        return self._add(sha256, hashes, source_image, reason, added_by)

    def _add(
        self, sha256: str, hashes: list[int], source: Any, reason: str, added_by: Any
    ) -> BlockedImage:
        entry, _ = self.get_or_create(
            sha256=sha256,
            defaults={
                "phash": to_signed64(hashes[0]) if hashes else None,
                "crop_hashes": [to_signed64(h) for h in hashes[1:]],
                "source_image": source,
                "reason": reason,
                "added_by": added_by,
            },
        )
        return entry


class BlockedImage(models.Model):
    """An image no upload may copy: exact bytes (sha256) or look-alikes (perceptual hash)."""

    sha256 = models.CharField(max_length=64, unique=True)
    # imagehash.phash (64 bits) as a signed bigint; null for an image with no usable look
    # (undecodable, or a flat colour), which only its exact bytes match.
    phash = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The phash of nine 5% crops of the image, so a lightly cropped copy is found too.
    crop_hashes = models.JSONField(default=list, blank=True, editable=False)
    source_image = models.ForeignKey(
        Image,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="blocklist_entries",
        help_text="The rejected image this entry was made from.",
    )
    reason = models.TextField(blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = BlockedImageManager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        source = f" from image {self.source_image_id}" if self.source_image_id else ""
        return f"Blocked {self.sha256[:12]}…{source}"

    def distance_to(self, phash: int) -> int:
        """Bits between `phash` (unsigned) and the nearest of this entry's hashes."""
        stored = [h for h in (self.phash, *self.crop_hashes) if h is not None]
        return min(((to_unsigned64(h) ^ phash).bit_count() for h in stored), default=65)

    @property
    def phash_hex(self) -> str:
        """The perceptual hash as imagehash prints it (16 hex digits)."""
        return "" if self.phash is None else f"{to_unsigned64(self.phash):016x}"
