"""Claims of the review workspace: opening an image keeps it for one moderator for
`REVIEW_CLAIM_SECONDS`, so two moderators working the queue are never shown the same image.

A claim is taken with one conditional UPDATE (free, lapsed, or already ours), which the
database applies to one moderator at a time; nothing needs cleaning up when a claim lapses.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from moderation.models import ReviewClaim
from uploads.models import Image

LAPSED = datetime(2000, 1, 1, tzinfo=UTC)
CANDIDATES = 20  # images tried per round when others are claiming the same ones


def claim_length() -> timedelta:
    return timedelta(seconds=settings.REVIEW_CLAIM_SECONDS)


def take(image_id: Any, moderator: Any, *, now: datetime | None = None) -> bool:
    """Claim (or renew the claim on) one image; False if another moderator holds it."""
    now = now or timezone.now()
    # The row exists (lapsed) before the conditional UPDATE decides who gets it.
    ReviewClaim.objects.bulk_create(
        [ReviewClaim(image_id=image_id, moderator=moderator, until=LAPSED, claimed_at=now)],
        ignore_conflicts=True,
    )
    taken = (
        ReviewClaim.objects.filter(image_id=image_id)
        .filter(Q(until__lte=now) | Q(moderator=moderator))
        .update(moderator=moderator, until=now + claim_length(), claimed_at=now)
    )
    return taken == 1


def release(image_ids: Collection[Any], moderator: Any) -> int:
    """Give back claims (a skip, a decision, a closed workspace)."""
    return ReviewClaim.objects.filter(image_id__in=list(image_ids), moderator=moderator).delete()[0]


def held_by_others(moderator: Any, *, now: datetime | None = None) -> QuerySet[ReviewClaim]:
    now = now or timezone.now()
    return ReviewClaim.objects.filter(until__gt=now).exclude(moderator=moderator)


def holder(image_id: Any, *, now: datetime | None = None) -> ReviewClaim | None:
    """The live claim on an image, if any."""
    now = now or timezone.now()
    claims = ReviewClaim.objects.select_related("moderator")
    return claims.filter(image_id=image_id, until__gt=now).first()


def available(moderator: Any, *, exclude: Collection[Any] = ()) -> QuerySet[Image]:
    """The queue as this moderator may take it: oldest first, without images others hold."""
    others = held_by_others(moderator).values("image_id")
    return Image.objects.awaiting_review().exclude(pk__in=others).exclude(pk__in=list(exclude))


def claim_next(moderator: Any, *, exclude: Collection[Any] = ()) -> Image | None:
    """The longest-waiting image nobody else holds, claimed for `moderator`."""
    for _ in range(5):  # a round is lost only to moderators claiming the same images
        candidates = list(available(moderator, exclude=exclude)[:CANDIDATES])
        if not candidates:
            return None
        for image in candidates:
            if take(image.pk, moderator):
                return image
    return None


def claim_page(moderator: Any, *, count: int, exclude: Collection[Any] = ()) -> list[Image]:
    """Up to `count` images for the grid, each claimed for `moderator`."""
    claimed: list[Image] = []
    for image in available(moderator, exclude=exclude)[: count * 2]:
        if len(claimed) == count:
            break
        if take(image.pk, moderator):
            claimed.append(image)
    return claimed
