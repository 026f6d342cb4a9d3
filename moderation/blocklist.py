"""Perceptual hashes of images, and the in-process index that finds near-duplicates fast.

A blocked image is found again when an upload's bytes match exactly (sha256, a database
lookup) or when its 64-bit perceptual hash (`imagehash.phash`) is within
BLOCKLIST_MAX_DISTANCE bits of a blocked one. Hamming distance cannot use a B-tree index, so
each process keeps every blocked hash in a numpy uint64 array and compares against all of them
at once (XOR + popcount): ~1 ms for 100,000 entries, see bench/moderation.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import imagehash
import numpy as np
from django.core.files.storage import storages
from django.utils import timezone
from PIL import Image as PILImage

from uploads import imaging
from uploads.models import Image

if TYPE_CHECKING:
    from moderation.models import BlockedImage

# phash reduces to 32x32 grey; decoding a JPEG at >= 256 px (draft mode) keeps it exact enough.
HASH_DECODE_SIZE = (256, 256)
# New entries are read incrementally by created_at; a transaction may commit a little after
# the timestamp it wrote, so each refresh looks back this far (ids already seen are skipped).
LOOK_BACK = timedelta(minutes=5)
FULL_RELOAD_SECONDS = 600


def read_original(image: Image) -> bytes:
    with storages["default"].open(image.md5, "rb") as original:
        return bytes(original.read())


def phash_of_pil(img: PILImage.Image) -> int:
    return int(str(imagehash.phash(img)), 16)


def phash_of_bytes(data: bytes) -> int:
    """The 64-bit perceptual hash of an image as shown upright (first frame, EXIF orientation
    applied, alpha on white). Raises ValueError when Pillow cannot decode it."""
    try:
        img, orientation = imaging.open_lazily(data)
        upright = imaging.flatten(imaging.decode(img, orientation, HASH_DECODE_SIZE), (255,) * 3)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode image for hashing: {exc}") from exc
    return phash_of_pil(upright)


_recent_hashes: dict[str, int | None] = {}
_recent_lock = threading.Lock()


def remember(sha256: str, phash: int | None) -> None:
    """Keep a hash just computed, for the rejection that may follow (see phash_of_image)."""
    with _recent_lock:
        if len(_recent_hashes) >= 256:
            _recent_hashes.pop(next(iter(_recent_hashes)))
        _recent_hashes[sha256] = phash


def phash_of_image(image: Image) -> int | None:
    """The perceptual hash of a stored image, None when it cannot be decoded. Reads the
    original unless moderation hashed these bytes a moment ago in this process."""
    with _recent_lock:
        if image.sha256 in _recent_hashes:
            return _recent_hashes[image.sha256]
    try:
        value: int | None = phash_of_bytes(read_original(image))
    except ValueError:
        value = None
    remember(image.sha256, value)
    return value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass(frozen=True)
class Candidate:
    entry_id: int
    distance: int


class HashIndex:
    """Every blocked perceptual hash of the database, in memory, for one process.

    Refreshed before each look-up: new rows are fetched by created_at (a small indexed query),
    and everything is reloaded every FULL_RELOAD_SECONDS. Rows deleted since the last reload
    may still be returned as candidates; callers confirm candidates against the database.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = np.empty(0, dtype=np.int64)
        self._hashes = np.empty(0, dtype=np.uint64)
        self._seen: dict[int, datetime] = {}  # id -> created_at, for rows inside the look-back
        self._refreshed_at = timezone.now()
        self._loaded_at = -float("inf")

    def __len__(self) -> int:
        return len(self._ids)

    def refresh(self) -> None:
        from moderation.models import BlockedImage

        rows = BlockedImage.objects.exclude(phash=None).values_list("id", "phash", "created_at")
        with self._lock:
            now = timezone.now()
            if time.monotonic() - self._loaded_at > FULL_RELOAD_SECONDS:
                new = list(rows)
                self._ids, self._hashes = _arrays(new)
                self._seen, self._loaded_at = {}, time.monotonic()
            else:
                since = self._refreshed_at - LOOK_BACK
                new = [r for r in rows.filter(created_at__gte=since) if r[0] not in self._seen]
                if new:
                    ids, hashes = _arrays(new)
                    self._ids = np.concatenate([self._ids, ids])
                    self._hashes = np.concatenate([self._hashes, hashes])
            cutoff = now - LOOK_BACK
            self._seen.update((r[0], r[2]) for r in new if r[2] >= cutoff)
            self._seen = {pk: at for pk, at in self._seen.items() if at >= cutoff}
            self._refreshed_at = now

    def nearest(self, phash: int, max_distance: int, limit: int = 5) -> list[Candidate]:
        """Entries within `max_distance` bits of `phash`, nearest first."""
        ids, hashes = self._ids, self._hashes  # one consistent snapshot, without the lock
        if not len(ids):
            return []
        distances = np.bitwise_count(hashes ^ np.uint64(phash))
        hits = np.flatnonzero(distances <= max_distance)
        order = hits[np.argsort(distances[hits], kind="stable")][:limit]
        return [Candidate(int(ids[i]), int(distances[i])) for i in order]


def _arrays(rows: list[tuple[int, int, datetime]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    hashes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    return ids, hashes.view(np.uint64)


index = HashIndex()


@dataclass(frozen=True)
class Match:
    entry: BlockedImage
    distance: int  # bits; 0 for identical bytes
    by: str  # "sha256" or "phash"

    def as_dict(self) -> dict[str, object]:
        return {
            "blocked_image_id": self.entry.pk,
            "source_image_id": str(self.entry.source_image_id or "") or None,
            "by": self.by,
            "distance": self.distance,
        }


def lookup(sha256: str, phash: int | None, max_distance: int) -> Match | None:
    """The blocklist entry these bytes or this look match, nearest first; None if none."""
    from moderation.models import BlockedImage, to_unsigned64

    exact = BlockedImage.objects.filter(sha256=sha256).first()
    if exact is not None:
        return Match(exact, 0, "sha256")
    if phash is None:
        return None
    index.refresh()
    candidates = index.nearest(phash, max_distance)
    entries = BlockedImage.objects.in_bulk([c.entry_id for c in candidates])
    for candidate in candidates:
        entry = entries.get(candidate.entry_id)  # gone when deleted since the last reload
        if entry is not None and entry.phash is not None:
            distance = hamming(to_unsigned64(entry.phash), phash)
            if distance <= max_distance:
                return Match(entry, distance, "phash")
    return None
