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
from typing import Any

import imagehash
import numpy as np
from django.db.models import Q
from PIL import Image as PILImage

from moderation.models import BlockedImage
from publishing import imaging
from publishing.services import read_original
from uploads.models import Image

# phash reduces to 32x32 grey; decoding a JPEG at >= 256 px (draft mode) keeps it exact enough.
HASH_DECODE_SIZE = (256, 256)
HASH_WORKING_SIDE = 128
CROP = 0.05
# Below this standard deviation (of 255) of the 32x32 grey thumbnail, an image is a flat colour
# or nearly: every such image has the same phash, so it is matched by its exact bytes only.
MIN_DETAIL = 4.0
# How long an id skipped by the sequence is looked for (an insert still in flight); seconds.
LOOK_BACK = 300.0
MAX_FOLLOWED_GAPS = 1000
FULL_RELOAD_SECONDS = 3600


def _phash(img: PILImage.Image) -> int:
    return int(str(imagehash.phash(img)), 16)


def perceptual_hashes(img: PILImage.Image) -> list[int]:
    """[phash of the whole image, then of its nine 5% crops], or [] when the image has too
    little detail for a perceptual hash to tell it from others."""
    grey = img.convert("L")
    scale = HASH_WORKING_SIDE / max(grey.size)
    if scale < 1:  # phash shrinks to 32x32 itself; a cheap box filter first saves most of it
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, PILImage.Resampling.BOX)
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


def decode_upright(data: bytes, size: tuple[int, int] = HASH_DECODE_SIZE) -> PILImage.Image:
    """The image as shown: first frame, EXIF orientation applied, alpha on white, decoded at
    about `size`. Raises ValueError when Pillow cannot decode it."""
    try:
        img, orientation = imaging.open_lazily(data)
        return imaging.flatten(imaging.decode(img, orientation, size), (255,) * 3)
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

    Refreshed before each look-up by one indexed query: rows with an id above the highest seen,
    plus ids below it still missing less than LOOK_BACK ago (a transaction that took its id
    before another but committed after it). Everything is reloaded every FULL_RELOAD_SECONDS
    to shed deleted rows; until then a deleted row may come back as a candidate, so callers
    confirm candidates against the table. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (entry ids, hashes), replaced as one tuple so readers never see a half update.
        self.arrays = _arrays([])
        self._max_id = 0
        self._missing: dict[int, float] = {}  # id below _max_id not seen yet -> when noticed
        self._loaded_at = -float("inf")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def refresh(self) -> None:
        rows = BlockedImage.objects.values_list("id", "phash", "crop_hashes").order_by("id")
        with self._lock:
            now = time.monotonic()
            if now - self._loaded_at > FULL_RELOAD_SECONDS:
                new = list(rows)
                self.arrays = _arrays(new)
                self._loaded_at, self._max_id, self._missing = now, 0, {}
            else:
                new = list(rows.filter(Q(id__gt=self._max_id) | Q(id__in=list(self._missing))))
                if new:
                    (ids, hashes), (old_ids, old_hashes) = _arrays(new), self.arrays
                    self.arrays = (
                        np.concatenate([old_ids, ids]),
                        np.concatenate([old_hashes, hashes]),
                    )
            self._track_missing([row[0] for row in new], now)

    def _track_missing(self, ids: list[int], now: float) -> None:
        for pk in ids:
            self._missing.pop(pk, None)
        top = max(ids, default=self._max_id)
        if self._loaded_at == now:  # a full load: gaps in it are not worth following
            self._max_id = top
            return
        found = set(ids)
        gaps = top - self._max_id - len(found)
        # Not after an empty table (ids of rolled-back rows), nor across a sequence jump.
        if self._max_id and gaps <= MAX_FOLLOWED_GAPS:
            for pk in range(self._max_id + 1, top):
                if pk not in found:
                    self._missing[pk] = now
        self._max_id = max(self._max_id, top)
        self._missing = {pk: at for pk, at in self._missing.items() if now - at < LOOK_BACK}

    def nearest(self, phash: int, max_distance: int, limit: int = 5) -> list[Candidate]:
        """Entries with a stored hash within `max_distance` bits of `phash`, nearest first."""
        ids, hashes = self.arrays  # one consistent snapshot, without the lock
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
    rows = [row for row in rows if row[1] is not None]
    ids = [pk for pk, _, crops in rows for _ in range(1 + len(crops))]
    hashes = [h for _, phash, crops in rows for h in (phash, *crops)]
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
