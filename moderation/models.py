"""What automatic moderation decided and why, the blocklist of rejected images, and hash banks.

`ModerationResult` rows are written by `moderation.services.moderate` and never changed
afterwards. `BlockedImage` rows are written when an image is rejected (by the policy or by a
moderator) and by moderators in the admin; their hashes are computed, never typed in.
`Bank` / `BankEntry` are named lists of PDQ (and MD5) hashes with an action: imported lists
(`manage.py import_hashes`) and the built-in bank our own rejections feed (moderation/banks.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from uploads.models import Image, State


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
    # The image's PDQ hash (64 hex digits) and quality (0-100), computed once, here.
    pdq = models.CharField(max_length=64, blank=True)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    bank_entry = models.ForeignKey(
        "BankEntry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="matches",
        help_text="The hash bank entry this image matched, if any.",
    )
    bank_distance = models.PositiveSmallIntegerField(null=True, blank=True)
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
    def add(
        self, sha256: str, hashes: list[int], source: Any, reason: str, added_by: Any
    ) -> BlockedImage:
        """The entry for these bytes, made from `hashes` (the pHash, then its crops) unless one
        exists. Use moderation.blocking, which computes the hashes and feeds the hash bank."""
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


class BankAction(models.TextChoices):
    REJECT = "reject", "Reject"
    REVIEW = "review", "Send to review"


class BankManager(models.Manager["Bank"]):
    def builtin(self) -> Bank:
        """The bank our own rejections and takedowns go to (made by a migration)."""
        bank, _ = self.get_or_create(name=BUILTIN_BANK, defaults=BUILTIN_BANK_DEFAULTS)
        return bank


BUILTIN_BANK = "pinster-rejected"
BUILTIN_BANK_DEFAULTS: dict[str, Any] = {
    "action": BankAction.REVIEW,
    "builtin": True,
    "provenance": "Images rejected or taken down here (added on rejection and takedown).",
}


class Bank(models.Model):
    """A named list of hashes of known content, with what to do with an upload that matches."""

    name = models.SlugField(max_length=100, unique=True)
    action = models.CharField(max_length=8, choices=BankAction.choices, default=BankAction.REVIEW)
    match_distance = models.PositiveSmallIntegerField(
        default=31,
        validators=[MaxValueValidator(31)],
        help_text="Largest PDQ distance (bits of 256) that matches; 31 is PDQ's usual threshold.",
    )
    enabled = models.BooleanField(default=True, help_text="A disabled bank matches nothing.")
    builtin = models.BooleanField(default=False, editable=False)
    provenance = models.TextField(blank=True, help_text="Where the list comes from, and when.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = BankManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(match_distance__lte=31), name="bank_match_distance_at_most_31"
            )
        ]

    def __str__(self) -> str:
        return self.name


class BankEntry(models.Model):
    """One hash of a bank: a PDQ hash (look-alikes) or an MD5 (the exact bytes)."""

    bank = models.ForeignKey(Bank, on_delete=models.CASCADE, related_name="entries")
    pdq = models.CharField(max_length=64, blank=True)  # 64 lowercase hex digits
    md5 = models.CharField(max_length=32, blank=True, db_index=True)  # 32 lowercase hex digits
    tags = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    source_image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="bank_entries"
    )
    added_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-added_at", "-id"]
        verbose_name_plural = "bank entries"
        constraints = [
            models.UniqueConstraint(
                fields=["bank", "pdq"], condition=~Q(pdq=""), name="bank_entry_unique_pdq"
            ),
            models.UniqueConstraint(
                fields=["bank", "md5"], condition=~Q(md5=""), name="bank_entry_unique_md5"
            ),
            models.CheckConstraint(condition=~Q(pdq="", md5=""), name="bank_entry_has_a_hash"),
        ]

    def __str__(self) -> str:
        value = self.pdq or self.md5
        return f"{self.bank_id and self.bank.name}: {value[:16]}…"

    @property
    def hash(self) -> str:
        return self.pdq or self.md5
