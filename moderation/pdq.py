"""PDQ, Meta's open 256-bit perceptual photo hash, in numpy, bit-for-bit as the reference.

The reference is the C++ implementation in facebook/ThreatExchange (`pdq/cpp/hashing`): luma
from RGB, a two-pass Jarosz (tent) filter, decimation to 64x64, the 16x16 low-frequency corner
of its DCT, and one bit per coefficient above their median. Every step here runs in float32 in
the reference's order of operations, so the hashes are identical, not merely close (checked
against the reference's own test images in tests/moderation/test_pdq.py). Hashes are 256-bit
ints whose bit k is the reference's bit k, so `f"{h:064x}"` is the hex every PDQ list uses.

Quality (0-100) counts significant gradients in the 64x64 image; the reference advises not to
trust hashes below 50 for matching (flat or nearly flat images all hash alike).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

BITS = 256
HEX_DIGITS = 64
HEX = re.compile(r"[0-9a-fA-F]{64}")
MIN_HASHABLE_SIDE = 5
JAROSZ_PASSES = 2
# The reference's own file hasher first resizes anything larger to 512x512; we decode JPEGs at
# about this size too (draft mode), which moves a hash by a few bits at most.
DECODE_SIDE = 512
MIN_QUALITY = 50


def _dct_matrix() -> np.ndarray:
    scale = float(np.float32(np.sqrt(2.0 / 64)))
    i = np.arange(1, 17, dtype=np.float64)[:, None]
    j = np.arange(64, dtype=np.float64)[None, :]
    return (scale * np.cos((np.pi / 2.0 / 64) * i * (2 * j + 1))).astype(np.float32)


_DCT = _dct_matrix()  # 16 x 64


@dataclass(frozen=True)
class PDQ:
    hash: int  # 256 bits
    quality: int  # 0-100

    @property
    def hex(self) -> str:
        return to_hex(self.hash)


def to_hex(value: int) -> str:
    return f"{value:064x}"


def from_hex(text: str) -> int:
    """The hash a 64-digit hex string spells; ValueError for anything else."""
    if not HEX.fullmatch(text):
        raise ValueError(f"not a 64-digit hex PDQ hash: {text[:80]!r}")
    return int(text, 16)


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def luma(img: PILImage.Image) -> np.ndarray:
    """Luma as the maintained bindings compute it (0.299 R + 0.587 G + 0.114 B in float64,
    then float32; a grey image as its RGB copy). The C++ file hasher sums in float32, which
    differs only on flat images, whose hashes mean nothing (quality 0)."""
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)


def pdq_of_image(img: PILImage.Image) -> PDQ:
    """PDQ of a decoded image, as shown (orientation and alpha already applied)."""
    return pdq_of_luma(luma(img))


def pdq_of_luma(pixels: np.ndarray) -> PDQ:
    rows, cols = pixels.shape
    if rows < MIN_HASHABLE_SIDE or cols < MIN_HASHABLE_SIDE:
        return PDQ(0, 0)
    if (rows, cols) == (64, 64):
        small = pixels.astype(np.float32)
    else:
        small = _downsample(pixels.astype(np.float32), rows, cols)
    coefficients = _dct_16(small)
    median = _torben_median(coefficients.ravel())
    bits = (coefficients.ravel() > median).nonzero()[0]
    return PDQ(sum(1 << int(k) for k in bits), _quality(small))


def _downsample(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    along_rows, along_cols = _window(cols), _window(rows)
    for _ in range(JAROSZ_PASSES):
        pixels = _box(pixels, along_rows)  # along each row: a running sum over columns
        pixels = _box(pixels.T, along_cols).T
    ri = ((np.arange(64) + 0.5) * rows / 64).astype(np.int64)
    ci = ((np.arange(64) + 0.5) * cols / 64).astype(np.int64)
    return np.ascontiguousarray(pixels[np.ix_(ri, ci)])


def _window(old: int, new: int = 64) -> int:
    return (old + 2 * new - 1) // (2 * new)


def _box(data: np.ndarray, window: int) -> np.ndarray:
    """The reference's box1DFloat along axis 1 of every row at once: a float32 running sum,
    added to and subtracted from in the same order, so the rounding is the same."""
    columns = np.ascontiguousarray(data.T)  # one step of the running sum per row of this
    out = np.empty_like(columns)
    total = np.zeros(columns.shape[1], dtype=np.float32)
    half = (window + 2) // 2
    add, subtract, divide = np.add, np.subtract, np.divide  # hot loops: no attribute look-ups
    for right in range(half - 1):
        add(total, columns[right], out=total)
    for right in range(half - 1, window):
        add(total, columns[right], out=total)
        divide(total, np.float32(right + 1), out=out[right - half + 1])
    size = np.float32(window)
    for right in range(window, len(columns)):
        add(total, columns[right], out=total)
        subtract(total, columns[right - window], out=total)
        divide(total, size, out=out[right - half + 1])
    for left in range(len(columns) - window, len(columns) - window + half - 1):
        subtract(total, columns[left], out=total)
        divide(total, np.float32(len(columns) - left - 1), out=out[left + window - half + 1])
    return out.T


def _dct_16(a: np.ndarray) -> np.ndarray:
    """D A D^T for the 16 lowest non-constant frequencies, summed in the reference's order."""
    t = np.zeros((16, 64), dtype=np.float32)
    for k in range(64):
        t = t + _DCT[:, k : k + 1] * a[k : k + 1, :]
    b = np.zeros((16, 16), dtype=np.float32)
    for k in range(64):
        b = b + t[:, k : k + 1] * _DCT[:, k][None, :]
    return b


def _torben_median(m: np.ndarray) -> np.float32:
    """The reference's median (Torben's algorithm): for 256 values, the lower middle one."""
    n = len(m)
    half = (n + 1) // 2
    lo, hi = m.min(), m.max()
    while True:
        guess = np.float32((lo + hi) / np.float32(2))
        below, above = m[m < guess], m[m > guess]
        less, greater = len(below), len(above)
        max_below = below.max() if less else lo
        min_above = above.min() if greater else hi
        if less <= half and greater <= half:
            break
        if less > greater:
            hi = max_below
        else:
            lo = min_above
    if less >= half:
        return np.float32(max_below)
    if less + (n - less - greater) >= half:
        return guess
    return np.float32(min_above)


def _quality(small: np.ndarray) -> int:
    def gradients(u: np.ndarray, v: np.ndarray) -> int:
        d = ((u - v) * np.float32(100)) / np.float32(255)
        return int(np.abs(np.trunc(d).astype(np.int64)).sum())

    total = gradients(small[:-1, :], small[1:, :]) + gradients(small[:, :-1], small[:, 1:])
    return min(total // 90, 100)
