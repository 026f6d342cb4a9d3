"""Putting content on the blocklist (the one entry point for rejections, takedowns and the
admin's "block" actions) and taking it off again (a restore).

Afterwards an upload of the same bytes (sha256) is rejected automatically with the entry's
reason, and a look-alike (its pHash or a crop's, or its PDQ through the built-in hash bank) goes
to review.
"""

from __future__ import annotations

import hashlib
from typing import Any

from moderation import banks, blocklist
from moderation.models import BankEntry, BlockedImage
from uploads.models import Actor, EventKind, Image, record_event


def block_image(image: Image, *, reason: str = "", added_by: Any = None) -> BlockedImage:
    """Blocklist an image's bytes and look, by default with the reason and moderator of its
    decision. Safe to run twice: an image already on the list keeps its entry. Reads the
    original from private storage unless moderation just hashed it; a storage error raises (the
    transition that called it rolls back)."""
    existing = BlockedImage.objects.filter(sha256=image.sha256).first()
    if existing is not None:
        return existing
    hashes = blocklist.hashes_of_image(image)
    reason = reason or image.decision_reason
    entry = BlockedImage.objects.add(
        image.sha256, hashes, image, reason, added_by or image.decided_by
    )
    banks.add_to_builtin_bank(image, reason=reason)
    return entry


def block_bytes(
    data: bytes, *, reason: str = "", added_by: Any = None, source_image: Any = None
) -> BlockedImage:
    """Blocklist an image that was never uploaded here (e.g. a file a moderator has), and add
    its PDQ to the built-in bank. Safe to run twice. Raises ValueError when `data` is not an
    image Pillow can read."""
    hashes = blocklist.hashes_of_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    entry = BlockedImage.objects.add(sha256, hashes, source_image, reason, added_by)
    fingerprint = banks.pdq_of_original_bytes(data)
    banks.add_pdq_to_builtin_bank(fingerprint, source_image=source_image, reason=reason)
    return entry


def unblock_image(image: Image) -> int:
    """Take a restored image's content off the blocklist: the entry of its bytes and the
    built-in bank's entries made from any image of these bytes, with an event on the image's
    timeline. Imported banks are not ours to edit. Returns how many entries were removed."""
    entries = list(BlockedImage.objects.filter(sha256=image.sha256).values_list("pk", flat=True))
    same_bytes = Image.objects.filter(sha256=image.sha256).values("pk")
    bank = BankEntry.objects.filter(bank__builtin=True, source_image__in=same_bytes)
    bank_entries = list(bank.values_list("pk", flat=True))
    if not (entries or bank_entries):
        return 0
    BlockedImage.objects.filter(pk__in=entries).delete()
    BankEntry.objects.filter(pk__in=bank_entries).delete()
    record_event(
        image.pk,
        EventKind.BLOCKLIST,
        actor=Actor.of(image.decided_by, otherwise="restore"),
        user=image.decided_by,
        reason="unblocked: restored",
        details={"removed_entries": entries, "removed_bank_entries": bank_entries},
    )
    return len(entries) + len(bank_entries)
