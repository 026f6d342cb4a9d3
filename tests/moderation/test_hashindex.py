"""The PDQ multi-index finds exactly what a linear scan finds, up to 31 bits."""

from __future__ import annotations

import numpy as np
import pytest

from moderation import hashindex


def flipped(row: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    as_bits = np.unpackbits(row)
    as_bits[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(as_bits)


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, list[np.ndarray]]:
    """20,000 random hashes, and queries with planted neighbours at 0 to 40 bits."""
    rng = np.random.default_rng(18)
    rows = rng.integers(0, 256, size=(20_000, 32), dtype=np.uint8)
    queries = []
    for i in range(200):
        query = flipped(rows[rng.integers(len(rows))], i % 41, rng)
        # a few more rows near this query, at spread distances, so some queries have several
        for bits in rng.integers(0, 36, size=3):
            rows[rng.integers(len(rows))] = flipped(query, int(bits), rng)
        queries.append(query)
    return rows, queries


@pytest.mark.parametrize("max_distance", [0, 1, 8, 15, 16, 24, 31])
def test_the_index_finds_exactly_the_rows_a_linear_scan_finds(planted, max_distance):
    rows, queries = planted
    index = hashindex.MultiIndex(rows)

    for query in queries:
        found, distances = index.search(query, max_distance)
        expected = hashindex.linear_search(rows, query, max_distance)

        assert found.tolist() == expected.tolist()
        assert distances.tolist() == hashindex.distances(rows[expected], query).tolist()


def test_the_planted_neighbours_are_found_at_every_distance_up_to_31(planted):
    rows, queries = planted
    index = hashindex.MultiIndex(rows)
    hits = [len(index.search(q, 31)[0]) for q in queries]

    assert sum(1 for h in hits if h) > 150  # the test means something: most queries hit


def test_rows_added_after_the_build_are_found_in_the_tail():
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
    hashes = hashindex.HashSet(np.arange(1000) + 1, rows)
    late = flipped(rows[7], 3, rng)[None, :]

    grown = hashes.extended(np.array([5000]), late)

    assert grown.search(rows[7], 31)[:2] == [(8, 0), (5000, 3)]
    assert hashes.search(rows[7], 31) == [(8, 0)]  # the original is unchanged
    assert len(grown) == 1001


def test_an_empty_index_finds_nothing():
    index = hashindex.MultiIndex(hashindex.from_hex([]))

    assert index.search(hashindex.from_ints([1])[0], 31)[0].tolist() == []


def test_a_distance_the_chunking_cannot_answer_exactly_is_refused():
    index = hashindex.MultiIndex(hashindex.from_ints([1, 2]))

    with pytest.raises(ValueError, match=r"0\.\.31"):
        index.search(hashindex.from_ints([1])[0], 32)


def test_hex_and_int_give_the_same_rows():
    value = (1 << 255) | 12345

    assert (hashindex.from_hex([f"{value:064x}"]) == hashindex.from_ints([value])).all()
    assert hashindex.distances(hashindex.from_ints([value]), hashindex.from_ints([0])[0])[0] == 7


def test_a_merged_tail_is_found_through_the_index():
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 256, size=(500, 32), dtype=np.uint8)
    extra = rng.integers(0, 256, size=(20, 32), dtype=np.uint8)
    grown = hashindex.HashSet(np.arange(500), rows).extended(np.arange(500, 520), extra)

    merged = grown.merged()

    assert len(merged.tail_keys) == 0
    assert len(merged.index) == 520
    for row in (rows[3], extra[5]):
        assert merged.search(row, 31) == grown.search(row, 31)
    assert merged.search(extra[5], 0) == [(505, 0)]
