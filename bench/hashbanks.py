"""Hash-bank benchmark: PDQ look-ups at distance <= 31 over 100k, 1M and 10M hashes, and how
well PDQ and the pHash blocklist keep matches under common edits.

    .venv/bin/python bench/hashbanks.py [--sizes 100000,1000000,10000000] [--queries 300]
    .venv/bin/python bench/hashbanks.py --only robustness

Index (one core, numpy): the multi-index of moderation/hashindex.py against a numpy linear
scan (XOR + popcount over N x 4 uint64, the competent brute force) and, when `faiss` imports,
faiss-cpu's IndexBinaryFlat (brute force) and IndexBinaryMultiHash (16 tables of 16 bits, one
flip: the same pigeonhole, so exact too), pinned to one thread. Hashes are uniform random
(PDQ bits are balanced by construction: half the coefficients are above the median); half the
queries have a planted neighbour 0-31 bits away, half are fresh random hashes. Each method's
answers are checked against the linear scan's. Memory is the arrays' size; build time is the
index build from arrays in memory (the bank table load is timed separately, on SQLite).

Robustness: photos this project generates (tests/photos.py, camera-like, with grain) and
scikit-image's detailed pictures (textures, astronomy, microscopy...), each edited; the share
of edited copies still matched to their original, by PDQ (distance <= 31, decoded as
moderation decodes) and by the pHash blocklist (whole-image pHash within 6 bits of the
original's pHash or of one of its nine 5% crops). False matches: every pair of unrelated
images of tests/moderation/corpus.py (crops of one picture and a photo's source count as
related), PDQ only when both have quality >= 50, pHash only when both have detail.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation import hashindex  # noqa: E402

RADIUS = 31


def planted_queries(rows: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    queries = []
    for i in range(count):
        if i % 2:
            queries.append(rng.integers(0, 256, 32, dtype=np.uint8))
            continue
        bits = np.unpackbits(rows[rng.integers(len(rows))])
        bits[rng.choice(256, int(rng.integers(0, RADIUS + 1)), replace=False)] ^= 1
        queries.append(np.packbits(bits))
    return queries


def timed(fn: Callable[[np.ndarray], object], queries: list[np.ndarray]) -> tuple[list, list]:
    """[(wall seconds, CPU seconds)] and the answers. CPU time (this process's) is what a
    query costs on a machine shared with other work; wall time is what it waits."""
    fn(queries[0])  # warm
    times, answers = [], []
    for query in queries:
        wall, cpu = time.perf_counter(), time.process_time()
        answers.append(fn(query))
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times, answers


def stats(times: list[tuple[float, float]]) -> str:
    wall, cpu = (np.array(column) * 1000 for column in zip(*times, strict=True))
    return (
        f"median {np.median(wall):8.3f} ms (CPU {np.median(cpu):7.3f})   "
        f"p99 {np.percentile(wall, 99):8.3f} ms (CPU {np.percentile(cpu, 99):7.3f})"
    )


def as_set(found: object) -> set[int]:
    return {int(x) for x in np.asarray(found).ravel()}


def bench_index(size: int, count: int) -> None:
    rng = np.random.default_rng(size)
    rows = rng.integers(0, 256, size=(size, 32), dtype=np.uint8)
    queries = planted_queries(rows, count, rng)
    print(f"\n{size:,} hashes ({rows.nbytes / 1e6:,.0f} MB of hashes), {count} queries")

    started, cpu, rss = time.perf_counter(), time.process_time(), _rss_mb()
    index = hashindex.MultiIndex(rows)
    built, built_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"  multi-index    build {built:6.2f} s (CPU {built_cpu:.2f} s), "
        f"{index.nbytes / 1e6:,.0f} MB arrays "
        f"(+{_rss_mb() - rss:,.0f} MB RSS), {index.nbytes / size:.0f} bytes/hash"
    )
    times, mih = timed(lambda q: index.search(q, RADIUS)[0], queries)
    print(f"  multi-index    {stats(times)}   hits {sum(len(a) for a in mih)}")

    scan_count = count if size <= 1_000_000 else max(10, count // 20)
    times, linear = timed(lambda q: hashindex.linear_search(rows, q, RADIUS), queries[:scan_count])
    print(f"  linear numpy   {stats(times)}   ({scan_count} queries)")
    wrong = sum(as_set(a) != as_set(b) for a, b in zip(mih, linear, strict=False))
    print(f"  multi-index answers differing from the linear scan: {wrong} of {scan_count}")
    _bench_faiss(rows, queries, linear, size)


def _bench_faiss(rows: np.ndarray, queries: list, linear: list, size: int) -> None:
    try:
        import faiss
    except ImportError:
        print("  faiss          (not installed: skipped)")
        return
    faiss.omp_set_num_threads(1)
    few = queries[: max(10, len(linear) // 4)]
    flat = faiss.IndexBinaryFlat(256)
    flat.add(rows)
    times, _ = timed(lambda q: flat.range_search(q[None, :], RADIUS + 1)[2], few)
    print(f"  faiss flat     {stats(times)}   ({len(few)} queries)")
    if size > 1_000_000:
        print("  faiss multihash (skipped above 1M: its build takes minutes)")
        return
    multi = faiss.IndexBinaryMultiHash(256, 16, 16)
    multi.nflip = 1
    started = time.perf_counter()
    multi.add(rows)
    built = time.perf_counter() - started
    times, found = timed(lambda q: multi.range_search(q[None, :], RADIUS + 1)[2], few)
    wrong = sum(as_set(a) != as_set(b) for a, b in zip(found, linear, strict=False))
    print(f"  faiss multihash {stats(times)}  build {built:.1f} s, {wrong} answers differ")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- Bank table load and look-up (SQLite) ------------------------------------------------------


def bench_bank_table(entries: int, rounds: int) -> None:
    _setup_django()
    from moderation import banks, pdq
    from moderation.models import Bank

    rng = np.random.default_rng(7)
    values = [f"{int.from_bytes(rng.bytes(32), 'big'):064x}" for _ in range(entries)]
    bank = Bank.objects.create(name="bench", action="review")
    started = time.perf_counter()
    report = banks.import_lines(bank, values)
    imported = time.perf_counter() - started
    print(
        f"\nBank table (SQLite): import_lines of {entries:,} lines {imported:.1f} s "
        f"({report.added:,} added)"
    )
    index = banks.BankIndex()
    started = time.perf_counter()
    index.refresh()
    print(f"  index full load from the table: {time.perf_counter() - started:.2f} s")
    banks.index = index
    probe = pdq.PDQ(int(values[3], 16) ^ 0b1011, 100)
    times = []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        match = banks.lookup("0" * 32, probe)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    assert match is not None
    assert match.distance == 3
    print(f"  banks.lookup (refresh query, index, confirmation query): {stats(times)}")


def _setup_django() -> None:
    from django.conf import settings

    if settings.configured:
        return
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imageservice.settings",
            "VAR_DIR": tempfile.mkdtemp(prefix="bench-hashbanks-"),
            "EMBEDDED_WORKER_THREADS": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DATABASE_URL", "BUCKET_NAME", "BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- Robustness -------------------------------------------------------------------------------


def edits() -> dict[str, Callable]:
    from PIL import Image, ImageDraw, ImageEnhance

    def crop(fraction: float, corner: bool) -> Callable:
        def edit(img):  # type: ignore[no-untyped-def]
            w, h = img.size
            dx, dy = round(w * fraction), round(h * fraction)
            box = (dx, dy, w, h) if corner else (dx // 2, dy // 2, w - dx // 2, h - dy // 2)
            return img.crop(box)

        return edit

    def watermark(img):  # type: ignore[no-untyped-def]
        img = img.convert("RGBA")
        layer = img.copy()
        draw = ImageDraw.Draw(layer)
        w, h = img.size
        box = (int(w * 0.6), int(h * 0.82), int(w * 0.97), int(h * 0.95))
        draw.rectangle(box, fill=(255, 255, 255, 255))
        draw.text((box[0] + 8, box[1] + 4), "@someone on pinster", fill=(0, 0, 0, 255))
        return Image.blend(img, layer, 0.6).convert("RGB")

    return {
        "recompressed (JPEG q50)": lambda img: img,
        "resized to 50%": lambda img: img.resize((img.width // 2, img.height // 2)),
        "resized to 25%": lambda img: img.resize((img.width // 4, img.height // 4)),
        "cropped 5% all round": crop(0.05, False),
        "cropped 5% off a corner": crop(0.05, True),
        "cropped 8% all round": crop(0.08, False),
        "cropped 8% off a corner": crop(0.08, True),
        "cropped 10% all round": crop(0.10, False),
        "cropped 10% off a corner": crop(0.10, True),
        "colour: saturation +30%": lambda img: ImageEnhance.Color(img).enhance(1.3),
        "colour: brightness +10%": lambda img: ImageEnhance.Brightness(img).enhance(1.1),
        "watermark (band, 60%)": watermark,
    }


def photo_set() -> dict[str, bytes]:
    from PIL import Image

    from tests import photos
    from tests.moderation.corpus import safe_corpus

    found = {f"photo/{s}": photos.photo(1200, 800, subject=s) for s in photos.SUBJECTS}
    for name, data in safe_corpus().items():
        if name.startswith("skimage/") and name.count("/") == 1:
            with Image.open(io.BytesIO(data)) as img:
                if min(img.size) >= 256:
                    found[name] = data
    return found


def fingerprints(data: bytes) -> tuple[int | None, list[int]]:
    """(PDQ or None when quality < 50, [pHash, nine crop pHashes] or [])."""
    from moderation import banks, blocklist, pdq

    fingerprint = banks.pdq_of_original_bytes(data)
    kept = fingerprint.hash if fingerprint.quality >= pdq.MIN_QUALITY else None
    return kept, blocklist.hashes_of_bytes(data)


def bench_robustness() -> None:
    from PIL import Image

    from moderation import pdq

    _setup_django()
    originals = photo_set()
    print(f"\nRobustness: {len(originals)} photos (5 camera-like, the rest detailed pictures)")
    base = {name: fingerprints(data) for name, data in originals.items()}
    print(
        f"  {'edit':28} {'PDQ <= 31':>10} {'pHash+crops <= 6':>17} {'pHash <= 6':>11}"
        f"   PDQ bits (median)"
    )
    usable_pdq = sum(p is not None for p, _ in base.values())
    usable_phash = sum(bool(h) for _, h in base.values())
    print(f"  ({usable_pdq} with PDQ quality >= 50, {usable_phash} with pHash detail)")
    for label, edit in edits().items():
        kept = {"pdq": 0, "crops": 0, "phash": 0}
        bits = []
        for name, data in originals.items():
            with Image.open(io.BytesIO(data)) as img:
                out = io.BytesIO()
                edit(img.convert("RGB")).save(out, "JPEG", quality=50 if "q50" in label else 85)
            copy_pdq, copy_hashes = fingerprints(out.getvalue())
            pdq0, hashes0 = base[name]
            if pdq0 is not None:
                bits.append(256 if copy_pdq is None else pdq.distance(pdq0, copy_pdq))
                kept["pdq"] += bits[-1] <= RADIUS
            if hashes0 and copy_hashes:
                kept["crops"] += min((h ^ copy_hashes[0]).bit_count() for h in hashes0) <= 6
                kept["phash"] += (hashes0[0] ^ copy_hashes[0]).bit_count() <= 6
        print(
            f"  {label:28} {kept['pdq'] / usable_pdq:10.0%} {kept['crops'] / usable_phash:17.0%} "
            f"{kept['phash'] / usable_phash:11.0%}   {statistics.median(bits) if bits else '-'}"
        )
    bench_false_matches()


def _group(name: str) -> str:
    parts = name.split("/")
    if parts[0] == "photo":
        from tests import photos

        source = photos.SUBJECTS[photos.KINDS[parts[1]]]
        return "skimage/" + source.split(".")[0].replace("_left", "").replace("_right", "")
    if parts[0] == "skimage":  # stereo pairs and one picture in two colour modes: related
        stem = parts[1]
        for suffix in ("_left", "_right", "_GRAY", "_RGB"):
            stem = stem.removesuffix(suffix)
        return "skimage/" + stem
    return name


def bench_false_matches() -> None:
    from tests.moderation.corpus import safe_corpus

    corpus = safe_corpus()
    names = list(corpus)
    hashes = {name: fingerprints(corpus[name]) for name in names}
    pairs = pdq_false = crops_false = pdq_pairs = phash_pairs = 0
    pdq_nearest = 256
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if _group(a) == _group(b):
                continue
            pairs += 1
            (pa, ha), (pb, hb) = hashes[a], hashes[b]
            if pa is not None and pb is not None:
                pdq_pairs += 1
                pdq_false += (pa ^ pb).bit_count() <= RADIUS
                pdq_nearest = min(pdq_nearest, (pa ^ pb).bit_count())
            if ha and hb:
                phash_pairs += 1
                crops_false += min((h ^ hb[0]).bit_count() for h in ha) <= 6
    print(
        f"  false matches among {len(names)} corpus images ({pairs:,} unrelated pairs): "
        f"PDQ {pdq_false} of {pdq_pairs:,} pairs (nearest {pdq_nearest} bits), "
        f"pHash+crops {crops_false} of {phash_pairs:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--table-entries", type=int, default=100_000)
    parser.add_argument("--only", choices=["index", "table", "robustness"])
    args = parser.parse_args()
    if args.only in (None, "index"):
        for size in (int(s) for s in args.sizes.split(",")):
            bench_index(size, args.queries)
    if args.only in (None, "table"):
        bench_bank_table(args.table_entries, rounds=50)
    if args.only in (None, "robustness"):
        bench_robustness()


if __name__ == "__main__":
    main()
