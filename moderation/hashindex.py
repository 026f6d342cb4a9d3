"""An exact in-memory index of 256-bit hashes for Hamming look-ups up to 31 bits (PDQ).

Multi-index hashing (Norouzi et al.; the scheme of ThreatExchange's `pdq/cpp/index/mih.h`):
each hash is cut into 16 chunks of 16 bits. Two hashes at most 31 bits apart differ by at most
1 bit in at least one chunk (16 chunks of 2 or more bits would make 32), so every match shares
a chunk with the query up to one flipped bit. A look-up reads, for each chunk, the rows whose
chunk equals one of 17 values (the query's and its 16 one-bit neighbours), then checks the real
distance of those candidates only: at 10M random hashes about 42,000 of them, against 10M for a
plain scan. Within 15 bits one chunk is equal, so 16 values are read instead of 272.

Rows are kept per chunk as a posting list sorted by chunk value (CSR: `offsets` into
`postings`), built in one stable radix sort per chunk. The structure is immutable once built;
`HashSet.extended` adds rows by keeping a small unsorted tail that is scanned linearly, and the
owner rebuilds when the tail grows (see moderation/banks.py).

Memory: 32 bytes per hash, 4 bytes per hash per chunk for the postings (64), and 16 x 65,537
offsets: about 96 bytes a hash, 0.96 GB for 10 million (bench/hashbanks.py measures it).
"""

from __future__ import annotations

import numpy as np

CHUNKS = 16
CHUNK_BITS = 16
MAX_DISTANCE = 2 * CHUNKS - 1  # 31: the largest distance the chunking keeps exact
_FLIPS = np.array([0, *(1 << b for b in range(CHUNK_BITS))], dtype=np.int64)
TAIL_LIMIT = 50_000


def from_hex(hashes: list[str]) -> np.ndarray:
    """N x 32 bytes from 64-digit hex strings (already validated)."""
    if not hashes:
        return np.zeros((0, 32), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(-1, 32)


def from_ints(hashes: list[int]) -> np.ndarray:
    return from_hex([f"{h:064x}" for h in hashes])


def distances(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance from each of `rows` (N x 32 bytes) to `query` (32 bytes)."""
    return _distances(rows.view(np.uint64), query.view(np.uint64))


def _distances(words: np.ndarray, query: np.ndarray) -> np.ndarray:
    counts = np.bitwise_count(words ^ query)  # N x 4 uint8; four adds beat a sum(axis=1)
    return counts[:, 0].astype(np.int64) + counts[:, 1] + counts[:, 2] + counts[:, 3]


class MultiIndex:
    """An immutable MIH index over N x 32-byte hashes; row numbers are positions in `rows`."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = np.ascontiguousarray(rows, dtype=np.uint8).reshape(-1, 32)
        self.words = self.rows.view(np.uint64)  # N x 4
        chunks = self.rows.view(np.uint16)  # N x 16
        n = len(self.rows)
        self.postings = np.empty((CHUNKS, n), dtype=np.uint32)
        self.offsets = np.empty((CHUNKS, (1 << CHUNK_BITS) + 1), dtype=np.int64)
        for c in range(CHUNKS):
            values = chunks[:, c]
            self.postings[c] = np.argsort(values, kind="stable")
            counts = np.bincount(values, minlength=1 << CHUNK_BITS)
            self.offsets[c, 0] = 0
            np.cumsum(counts, out=self.offsets[c, 1:])

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.postings.nbytes + self.offsets.nbytes

    def search(self, query: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, distances) of every row within `max_distance` bits of `query`."""
        if not 0 <= max_distance <= MAX_DISTANCE:
            raise ValueError(f"max_distance must be 0..{MAX_DISTANCE}, not {max_distance}")
        if not len(self.rows):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        flips = _FLIPS[:1] if max_distance < CHUNKS else _FLIPS
        probes = query.view(np.uint16).astype(np.int64)[:, None] ^ flips[None, :]  # 16 x P
        chunk = np.arange(CHUNKS)[:, None]
        starts = self.offsets[chunk, probes].ravel()
        lengths = self.offsets[chunk, probes + 1].ravel() - starts
        starts += np.repeat(np.arange(CHUNKS) * len(self.rows), flips.size)
        candidates = self.postings.ravel()[_ranges(starts, lengths)]
        found = _distances(np.take(self.words, candidates, axis=0), query.view(np.uint64))
        hits = found <= max_distance
        rows, first = np.unique(candidates[hits], return_index=True)
        return rows.astype(np.int64), found[hits][first]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of range(start, start + length) for each pair, without a loop."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    ends = np.cumsum(lengths)
    steps = np.ones(total, dtype=np.int64)
    steps[0] = starts[0]
    steps[ends[:-1]] = starts[1:] - (starts[:-1] + lengths[:-1]) + 1
    return np.cumsum(steps)


def linear_search(rows: np.ndarray, query: np.ndarray, max_distance: int) -> np.ndarray:
    """Row numbers within `max_distance`, by a plain scan (the baseline, and the tail's)."""
    return np.flatnonzero(distances(rows, query) <= max_distance)


class HashSet:
    """Hashes with their keys (entry ids): a MIH index over most, a linearly scanned tail."""

    def __init__(self, keys: np.ndarray, rows: np.ndarray) -> None:
        self.index = MultiIndex(rows)
        self.keys = np.asarray(keys, dtype=np.int64)
        self.tail_keys = np.zeros(0, dtype=np.int64)
        self.tail = np.zeros((0, 32), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.keys) + len(self.tail_keys)

    def extended(self, keys: np.ndarray, rows: np.ndarray) -> HashSet:
        """A copy with more rows in the tail (the index itself is shared, never changed)."""
        new = HashSet.__new__(HashSet)
        new.index, new.keys = self.index, self.keys
        new.tail_keys = np.concatenate([self.tail_keys, np.asarray(keys, dtype=np.int64)])
        new.tail = np.concatenate([self.tail, rows])
        return new

    def merged(self) -> HashSet:
        """A copy with the tail built into the index (no database read)."""
        rows = np.concatenate([self.index.rows, self.tail])
        return HashSet(np.concatenate([self.keys, self.tail_keys]), rows)

    def search(self, query: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
        """[(key, distance)] within `max_distance`, nearest first."""
        rows, found = self.index.search(query, max_distance)
        tail_found = distances(self.tail, query)
        tail_rows = np.flatnonzero(tail_found <= max_distance)
        pairs = [(int(self.keys[r]), int(d)) for r, d in zip(rows, found, strict=True)]
        pairs += [(int(self.tail_keys[r]), int(tail_found[r])) for r in tail_rows]
        return sorted(pairs, key=lambda pair: (pair[1], pair[0]))
