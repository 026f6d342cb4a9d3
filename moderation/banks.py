"""Hash banks: an upload's PDQ hash and MD5 looked up in named lists of known content.

Each bank has an action (reject, or send to review) and a match distance (PDQ bits of 256,
at most 31). Our own rejections and takedowns add the image's PDQ to the built-in bank
(`add_to_builtin_bank`, called by `moderation.blocking.block_image`); other lists are
imported from the plain format they are exchanged in (`parse_line`, `import_lines`,
`manage.py import_hashes`): one hash per line, 64 hex digits for PDQ or 32 for an MD5 of the
exact file, optionally followed by a comma and free-form tags.

Every process keeps every PDQ of every bank in a multi-index (moderation/hashindex.py), brought
up to date before each look-up by one indexed query (the same incremental reload as the pHash
index of moderation/blocklist.py): a new entry matches at once, in every worker. Candidates
are confirmed against the table, so a deleted entry or a disabled bank stops matching at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from moderation import blocklist, hashindex, pdq
from moderation.backends import DECODE_AT, Original, UnmoderatableImage
from moderation.models import Bank, BankAction, BankEntry, ModerationResult
from uploads.models import Image

DECODE_SIZE = DECODE_AT  # Original decodes at this size once; smaller sizes are halved from it
MD5_DIGITS = 32
LOAD_CHUNK = 100_000


def pdq_of_original(original: Original) -> pdq.PDQ:
    """The PDQ hash of an image as shown. Raises UnmoderatableImage if it cannot be decoded."""
    return pdq.pdq_of_image(original.upright(DECODE_SIZE))


def pdq_of_original_bytes(data: bytes) -> pdq.PDQ:
    """The PDQ hash of encoded image bytes, decoded as moderation decodes an original."""
    return pdq.pdq_of_image(blocklist.decode_upright(data, DECODE_SIZE))


# --- Look-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankMatch:
    entry: BankEntry
    distance: int  # bits of 256; 0 for an MD5 match
    by: str  # "pdq" or "md5"

    @property
    def action(self) -> str:
        return self.entry.bank.action

    def as_dict(self) -> dict[str, object]:
        return {
            "bank": self.entry.bank.name,
            "bank_id": self.entry.bank_id,
            "entry_id": self.entry.pk,
            "by": self.by,
            "distance": self.distance,
            "action": self.action,
            "tags": self.entry.tags,
        }

    def describe(self) -> str:
        how = "the same file (MD5) as" if self.by == "md5" else f"{self.distance} bits from"
        tags = f" [{self.entry.tags}]" if self.entry.tags else ""
        return f"hash bank {self.entry.bank.name}: {how} entry #{self.entry.pk}{tags}"


class BankIndex(blocklist.HashIndex):
    """Every PDQ hash of every bank, in memory, for one process (see the module docstring).

    New rows go to a linearly scanned tail, built into the multi-index (from memory) when it
    passes hashindex.TAIL_LIMIT rows; everything is reloaded from the table every
    blocklist.FULL_RELOAD_SECONDS, which sheds deleted rows. The look-up that triggers a
    rebuild waits for it; one that finds another thread rebuilding answers from the current
    snapshot.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hashes = _hash_set(np.zeros(0, dtype=np.int64), hashindex.from_hex([]))

    def __len__(self) -> int:
        return len(self.hashes)

    def refresh(self) -> None:
        rows = BankEntry.objects.exclude(pdq="").values_list("id", "pdq").order_by("id")
        if not self._lock.acquire(blocking=self._loaded_at == -float("inf")):
            return
        try:
            now = time.monotonic()
            if now - self._loaded_at > blocklist.FULL_RELOAD_SECONDS:
                keys, hashes = _load(rows)
                self.hashes = _hash_set(keys, hashes)
                self._loaded_at, self._max_id, self._missing = now, 0, {}
            else:
                missing = list(self._missing)
                keys, hashes = _load(rows.filter(Q(id__gt=self._max_id) | Q(id__in=missing)))
                if len(keys):
                    self.hashes = self.hashes.extended(keys, hashes)
                if len(self.hashes.tail_keys) > hashindex.TAIL_LIMIT:
                    self.hashes = self.hashes.merged()
            self._track_missing([int(k) for k in keys], now)
        finally:
            self._lock.release()

    def nearest(self, phash: int, max_distance: int, limit: int = 20) -> list[blocklist.Candidate]:
        """Entries whose PDQ is within `max_distance` bits of `phash` (a PDQ), nearest first."""
        found = self.hashes.search(hashindex.from_ints([phash])[0], max_distance)
        return [blocklist.Candidate(key, distance) for key, distance in found[:limit]]


def _hash_set(keys: np.ndarray, hashes: np.ndarray) -> hashindex.HashSet:
    return hashindex.HashSet(keys, hashes)


def _load(rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, N x 32 bytes) of (id, pdq hex) rows, read in chunks to bound memory."""
    keys: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    batch: list[tuple[int, str]] = []
    for row in rows.iterator(chunk_size=LOAD_CHUNK):
        batch.append(row)
        if len(batch) == LOAD_CHUNK:
            keys.append(np.array([pk for pk, _ in batch], dtype=np.int64))
            hashes.append(hashindex.from_hex([h for _, h in batch]))
            batch = []
    keys.append(np.array([pk for pk, _ in batch], dtype=np.int64))
    hashes.append(hashindex.from_hex([h for _, h in batch]))
    return np.concatenate(keys), np.concatenate(hashes)


index = BankIndex()


def lookup(
    md5: str, fingerprint: pdq.PDQ | None, *, image: Image | None = None
) -> BankMatch | None:
    """The entry of an enabled bank that these bytes (MD5) or this look (PDQ, when its quality
    is at least pdq.MIN_QUALITY) match, within its bank's distance; a reject bank's entry
    before a review bank's, then the nearest. None if none. An entry made from `image` itself
    does not count (re-moderating a rejected image asks what the policy says now)."""
    entries = BankEntry.objects.filter(bank__enabled=True).select_related("bank")
    if image is not None:
        entries = entries.exclude(source_image_id=image.pk)
    matches = [BankMatch(entry, 0, "md5") for entry in entries.filter(md5=md5)]
    if fingerprint is not None and fingerprint.quality >= pdq.MIN_QUALITY:
        index.refresh()
        candidates = index.nearest(fingerprint.hash, hashindex.MAX_DISTANCE, limit=100)
        found = entries.in_bulk([c.entry_id for c in candidates])
        for candidate in candidates:
            entry = found.get(candidate.entry_id)  # gone when deleted or its bank disabled
            if entry is not None and candidate.distance <= entry.bank.match_distance:
                matches.append(BankMatch(entry, candidate.distance, "pdq"))
    if not matches:
        return None
    return min(matches, key=lambda m: (m.action != BankAction.REJECT, m.distance, m.entry.pk))


# --- Our own rejections -------------------------------------------------------------------------


def add_to_builtin_bank(image: Image, *, reason: str = "") -> BankEntry | None:
    """Add an image's PDQ to the built-in bank (look-alikes of it then go to review). Uses the
    hash moderation stored, else hashes the original. None when the image has no usable PDQ
    (undecodable, or too flat: its exact bytes are still blocked by sha256). Safe to run
    twice; a storage error raises."""
    stored = (
        ModerationResult.objects.filter(image=image, pdq_quality__isnull=False)
        .values_list("pdq", "pdq_quality")
        .first()
    )
    if stored is not None:
        fingerprint = pdq.PDQ(pdq.from_hex(stored[0]), stored[1] or 0)
    else:
        try:
            fingerprint = pdq_of_original(Original(image))
        except UnmoderatableImage:
            return None
    return add_pdq_to_builtin_bank(fingerprint, source_image=image, reason=reason)


def add_pdq_to_builtin_bank(
    fingerprint: pdq.PDQ, *, source_image: Image | None, reason: str
) -> BankEntry | None:
    """None when the hash's quality is below pdq.MIN_QUALITY. Safe to run twice."""
    if fingerprint.quality < pdq.MIN_QUALITY:
        return None
    tags = f"image:{source_image.pk}" if source_image is not None else ""
    entry, _ = BankEntry.objects.get_or_create(
        bank=Bank.objects.builtin(),
        pdq=fingerprint.hex,
        defaults={"source_image": source_image, "reason": reason, "tags": tags},
    )
    return entry


# --- Import and export --------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    pdq: str = ""
    md5: str = ""
    tags: str = ""


def parse_line(text: str) -> Line | None:
    """A hash line: `HASH[,tags]`, HASH being 64 hex digits (PDQ) or 32 (MD5). None for a
    blank line or a `#` comment; ValueError (saying why) for anything else."""
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    value, _, tags = text.partition(",")
    value = value.strip().lower()
    if len(value) == MD5_DIGITS and _is_hex(value):
        return Line(md5=value, tags=tags.strip())
    try:
        return Line(pdq=pdq.to_hex(pdq.from_hex(value)), tags=tags.strip())
    except ValueError:
        shown = value if len(value) <= 70 else value[:70] + "…"
        raise ValueError(f"not a PDQ hash (64 hex digits) nor an MD5 (32): {shown!r}") from None


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)


@dataclass
class ImportReport:
    read: int = 0  # lines with a hash or an error (blank lines and comments not counted)
    added: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    @property
    def already_there(self) -> int:
        return self.read - self.added - len(self.invalid)


def import_lines(
    bank: Bank,
    lines: Iterable[str],
    *,
    batch_size: int = 10_000,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Add each valid line's hash to `bank`; report invalid lines by number and skip them.
    Idempotent: a hash already in the bank (or twice in the file) is added once."""
    report = ImportReport()
    batch: list[Line] = []
    for number, text in enumerate(lines, start=1):
        try:
            line = parse_line(text)
        except ValueError as exc:
            report.read += 1
            report.invalid.append((number, str(exc)))
            continue
        if line is None:
            continue
        report.read += 1
        batch.append(line)
        if len(batch) >= batch_size:
            report.added += _insert(bank, batch)
            batch = []
            if progress is not None:
                progress(report)
    report.added += _insert(bank, batch)
    if progress is not None:
        progress(report)
    return report


def _insert(bank: Bank, lines: list[Line]) -> int:
    """Insert the lines' hashes not in the bank yet; how many that was.

    One parameterised INSERT ... ON CONFLICT DO NOTHING per row through executemany: the
    unique constraints make it idempotent (and safe beside a concurrent import of the same
    list), and it skips building a model instance per row, most of an ORM bulk_create's time.
    """
    if not lines:
        return 0
    table = connection.ops.quote_name(BankEntry._meta.db_table)  # our own name, not input
    sql = (
        f"INSERT INTO {table} (bank_id, pdq, md5, tags, reason, added_at) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, '', %s) ON CONFLICT DO NOTHING"
    )
    now = timezone.now()
    rows = [(bank.pk, line.pdq, line.md5, line.tags, now) for line in lines]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
        return max(cursor.rowcount, 0)


def export_lines(bank: Bank) -> Iterator[str]:
    """The bank in the format import_lines reads, oldest entry first."""
    rows = bank.entries.order_by("id").values_list("pdq", "md5", "tags")
    for pdq_hex, md5, tags in rows.iterator(chunk_size=10_000):
        yield f"{pdq_hex or md5},{tags}" if tags else (pdq_hex or md5)
