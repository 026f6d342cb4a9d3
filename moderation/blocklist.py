"""Perceptual hashes of images, and the in-process index that finds near-duplicates fast.

A blocked image is found again when an upload's bytes match exactly (sha256, a database
lookup) or when the upload's 64-bit perceptual hash (`imagehash.phash`) is within
BLOCKLIST_MAX_DISTANCE bits of the blocked image's, or of one of its nine 5% crops (each side,
each corner, all round): a plain phash moves up to 16 bits when 5% is cropped off, the nearest
stored crop at most 6 (measured in tests/moderation/test_blocklist.py and docs/moderation.md).

Hamming distance cannot use a B-tree index, so each process keeps every blocked hash in a numpy
uint64 array and compares the upload's hash against all of them at once (XOR + popcount):
~2 ms for 100,000 entries (1,000,000 hashes), see bench/moderation.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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
CROP = 0.05
# Below this standard deviation (of 255) of the 32x32 grey thumbnail, an image is a flat colour
# or nearly: every such image has the same phash, so it is matched by its exact bytes only.
MIN_DETAIL = 4.0
# New entries are read incrementally by created_at; a transaction may commit a little after
# the timestamp it wrote, so each refresh looks back this far (ids already seen are skipped).
LOOK_BACK = timedelta(minutes=5)
FULL_RELOAD_SECONDS = 600


def read_original(image: Image) -> bytes:
    with storages["default"].open(image.md5, "rb") as original:
        return bytes(original.read())


def _phash(img: PILImage.Image) -> int:
    return int(str(imagehash.phash(img)), 16)


def perceptual_hashes(img: PILImage.Image) -> list[int]:
    """[phash of the whole image, then of its nine 5% crops], or [] when the image has too
    little detail for a perceptual hash to tell it from others."""
    grey = img.convert("L")
    thumbnail = np.asarray(grey.resize((32, 32), PILImage.Resampling.LANCZOS), dtype=np.float32)
    if float(thumbnail.std()) < MIN_DETAIL:
        return []
    w, h = grey.size
    dx, dy = max(1, round(w * CROP)), max(1, round(h * CROP))
    boxes = [
        (0, 0, w, h),
        *[(dx, 0, w, h), (0, 0, w - dx, h), (0, dy, w, h), (0, 0, w, h - dy)],
        *[(dx, dy, w, h), (0, 0, w - dx, h - dy), (0, dy, w - dx, h), (dx, 0, w, h - dy)],
        (dx // 2, dy // 2, w - dx // 2, h - dy // 2),
    ]
    return [_phash(grey.crop(box)) for box in boxes]


def decode_upright(data: bytes) -> PILImage.Image:
    """The image as shown: first frame, EXIF orientation applied, alpha on white, decoded at
    about HASH_DECODE_SIZE. Raises ValueError when Pillow cannot decode it."""
    try:
        img, orientation = imaging.open_lazily(data)
        return imaging.flatten(imaging.decode(img, orientation, HASH_DECODE_SIZE), (255,) * 3)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode image for hashing: {exc}") from exc


def hashes_of_bytes(data: bytes) -> list[int]:
    return perceptual_hashes(decode_upright(data))


_recent_hashes: dict[str, list[int]] = {}
_recent_lock = threading.Lock()


def remember(sha256: str, hashes: list[int]) -> None:
    """Keep hashes just computed, for the rejection that may follow (see hashes_of_image)."""
    with _recent_lock:
        if len(_recent_hashes) >= 256:
            _recent_hashes.pop(next(iter(_recent_hashes)))
        _recent_hashes[sha256] = hashes


def hashes_of_image(image: Image) -> list[int]:
    """The perceptual hashes of a stored image ([] when it cannot be decoded). Reads the
    original unless moderation hashed these bytes a moment ago in this process."""
    with _recent_lock:
        if image.sha256 in _recent_hashes:
            return _recent_hashes[image.sha256]
    try:
        hashes = hashes_of_bytes(read_original(image))
    except ValueError:
        hashes = []
    remember(image.sha256, hashes)
    return hashes


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

        rows = BlockedImage.objects.exclude(phash=None).values_list(
            "id", "phash", "crop_hashes", "created_at"
        )
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
            self._seen.update((r[0], r[3]) for r in new if r[3] >= cutoff)
            self._seen = {pk: at for pk, at in self._seen.items() if at >= cutoff}
            self._refreshed_at = now

    def nearest(self, phash: int, max_distance: int, limit: int = 5) -> list[Candidate]:
        """Entries with a stored hash within `max_distance` bits of `phash`, nearest first."""
        ids, hashes = self._ids, self._hashes  # one consistent snapshot, without the lock
        if not len(ids):
            return []
        distances = np.bitwise_count(hashes ^ np.uint64(phash))
        hits = np.flatnonzero(distances <= max_distance)
        found: dict[int, int] = {}
        for i in hits[np.argsort(distances[hits], kind="stable")]:
            found.setdefault(int(ids[i]), int(distances[i]))
            if len(found) == limit:
                break
        return [Candidate(entry_id, distance) for entry_id, distance in found.items()]


def _arrays(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """One (entry id, hash) pair per stored hash: the whole image's and each crop's."""
    ids = [pk for pk, phash, crops, _ in rows for _ in range(1 + len(crops))]
    hashes = [h for _, phash, crops, _ in rows for h in (phash, *crops)]
    return np.array(ids, dtype=np.int64), np.array(hashes, dtype=np.int64).view(np.uint64)


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


def lookup(
    sha256: str, hashes: list[int], max_distance: int, *, image: Image | None = None
) -> Match | None:
    """The blocklist entry these bytes (sha256) or this look (the upload's whole-image phash,
    `hashes[0]`) match, nearest first; None if none. An entry made from `image` itself does
    not count (re-moderating a rejected image asks what the policy says now)."""
    from moderation.models import BlockedImage

    entries = BlockedImage.objects.all()
    if image is not None:
        entries = entries.exclude(source_image_id=image.pk)
    exact = entries.filter(sha256=sha256).first()
    if exact is not None:
        return Match(exact, 0, "sha256")
    if not hashes:
        return None
    index.refresh()
    candidates = index.nearest(hashes[0], max_distance)
    found = entries.in_bulk([c.entry_id for c in candidates])
    for candidate in candidates:
        entry = found.get(candidate.entry_id)  # gone when deleted since the last reload
        if entry is not None and entry.distance_to(hashes[0]) <= max_distance:
            return Match(entry, entry.distance_to(hashes[0]), "phash")
    return None
