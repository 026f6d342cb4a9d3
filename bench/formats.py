"""Delivery formats: what AVIF and WebP cost to encode and save against JPEG at equal quality.

    .venv/bin/python bench/formats.py [--rounds 3] [--sizes 400,800,1600] [--photos 2]

For each detailed test photo (tests/photos.py: camera-like grain on scikit-image's photos) and
each size, the thumbnail's pixels are made once (Lanczos of the upright photo) and encoded:
- JPEG at the service's quality (JPEG_QUALITY, 85): the yardstick, its SSIM the target;
- WebP (method 2, as published) and AVIF (speed 8, as rendered on demand) at the lowest quality
  whose SSIM reaches the JPEG's (a binary search over quality): "equal quality" bytes;
- WebP and AVIF at the service's defaults (WEBP_QUALITY 80, AVIF_QUALITY 60): what is served.
SSIM is scikit-image's structural_similarity on RGB (data_range 255), against the unencoded
thumbnail. Encode cost is time.process_time() per encode, median of --rounds. AVIF's speed 6
(Pillow's default) is timed too, to show what speed 8 buys.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from tests import photos  # noqa: E402

JPEG_QUALITY, WEBP_QUALITY, AVIF_QUALITY = 85, 80, 60
WEBP_METHOD, AVIF_SPEED = 2, 8
PHOTOS = [("astronaut", 4000, 3000), ("coffee", 3000, 2000), ("chelsea", 3000, 2000)]


def encode(img: Image.Image, fmt: str, quality: int, effort: int | None = None) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=quality)
    elif fmt == "WEBP":
        img.save(out, "WEBP", quality=quality, method=WEBP_METHOD if effort is None else effort)
    else:
        img.save(out, "AVIF", quality=quality, speed=AVIF_SPEED if effort is None else effort)
    return out.getvalue()


def ssim(reference: np.ndarray, data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as img:
        decoded = np.asarray(img.convert("RGB"))
    return float(structural_similarity(reference, decoded, channel_axis=2, data_range=255))


def cpu_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def equal_quality(img: Image.Image, reference: np.ndarray, fmt: str, target: float) -> int:
    """The lowest quality (1-100) of `fmt` whose SSIM reaches `target`."""
    low, high = 1, 100
    while low < high:
        middle = (low + high) // 2
        if ssim(reference, encode(img, fmt, middle)) >= target:
            high = middle
        else:
            low = middle + 1
    return low


def row(label: str, data: bytes, jpeg: bytes, score: float, ms: float) -> str:
    saved = 100 * (1 - len(data) / len(jpeg))
    return f"| {label} | {len(data) / 1024:7.1f} KB | {saved:+5.0f}% | {score:.4f} | {ms:7.1f} |"


def bench(subject: str, full: tuple[int, int], side: int, rounds: int) -> list[str]:
    img = photos.upright(*full, subject=subject)
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    reference = np.asarray(img)
    jpeg = encode(img, "JPEG", JPEG_QUALITY)
    target = ssim(reference, jpeg)
    lines = [
        f"\n### {subject}, {img.width}x{img.height}\n",
        "| encoding | bytes | saved vs JPEG | SSIM | encode CPU ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        row(
            f"JPEG q{JPEG_QUALITY}",
            jpeg,
            jpeg,
            target,
            cpu_ms(lambda: encode(img, "JPEG", JPEG_QUALITY), rounds),
        ),
    ]
    for fmt in ("WEBP", "AVIF"):
        quality = equal_quality(img, reference, fmt, target)
        data = encode(img, fmt, quality)
        ms = cpu_ms(lambda q=quality, f=fmt: encode(img, f, q), rounds)
        lines.append(row(f"{fmt} q{quality} (equal SSIM)", data, jpeg, ssim(reference, data), ms))
    for fmt, quality in (("WEBP", WEBP_QUALITY), ("AVIF", AVIF_QUALITY)):
        data = encode(img, fmt, quality)
        ms = cpu_ms(lambda q=quality, f=fmt: encode(img, f, q), rounds)
        lines.append(row(f"{fmt} q{quality} (served)", data, jpeg, ssim(reference, data), ms))
    slow = encode(img, "AVIF", AVIF_QUALITY, effort=6)
    ms = cpu_ms(lambda: encode(img, "AVIF", AVIF_QUALITY, effort=6), rounds)
    lines.append(row(f"AVIF q{AVIF_QUALITY} speed 6", slow, jpeg, ssim(reference, slow), ms))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="400,800,1600")
    parser.add_argument("--photos", type=int, default=2, help="how many of the test photos")
    args = parser.parse_args()
    print("## AVIF and WebP against JPEG (bench/formats.py)")
    for subject, width, height in PHOTOS[: args.photos]:
        for side in (int(s) for s in args.sizes.split(",")):
            print("\n".join(bench(subject, (width, height), side, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
