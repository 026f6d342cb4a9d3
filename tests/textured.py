"""A detailed, textured photograph made from nothing but a seed: the content that exposes
resampling shortcuts (box averaging, DCT-scaled decodes) which smooth photos hide.

``textured(width=4000, height=3000, *, seed=16, quality=92) -> bytes`` -- a JPEG with
multi-octave colour noise (foliage-like texture at every scale down to a few pixels), sharp
edges at all angles and lines of text, deterministic for a seed. Cached.
``textured_pixels(...) -> PIL.Image`` -- the same pixels before JPEG.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Periods in pixels of the noise octaves and their amplitudes (sum < 1): most of the energy in
# the coarse octaves, as in real scenes, and enough at 4-16 px to be visible detail at 1600 px.
OCTAVES = ((600, 0.30), (150, 0.22), (40, 0.18), (12, 0.14), (4, 0.08))


def _octave(rng: np.random.Generator, size: tuple[int, int], period: int) -> np.ndarray:
    width, height = size
    cells = (max(2, width // period + 2), max(2, height // period + 2))
    small = rng.random((cells[1], cells[0], 3), dtype=np.float32)
    grid = Image.fromarray((small * 255).astype(np.uint8), "RGB")
    # Bicubic upsampling of a random grid: smooth value noise of this period.
    return np.asarray(grid.resize(size, Image.Resampling.BICUBIC), np.float32) / 255 - 0.5


@lru_cache(maxsize=4)
def textured_pixels(width: int = 4000, height: int = 3000, *, seed: int = 16) -> Image.Image:
    rng = np.random.default_rng(seed)
    canvas = np.full((height, width, 3), 0.5, np.float32)
    for period, amplitude in OCTAVES:
        canvas += amplitude * 2 * _octave(rng, (width, height), period)
    img = Image.fromarray((np.clip(canvas, 0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    scale = width / 4000
    for _ in range(60):  # sharp-edged shapes and lines at random angles
        x, y = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(40, 400) * scale, rng.integers(40, 400) * scale
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.line((x, y, x + w, y - h), fill=colour, width=int(rng.integers(1, 6)))
    font = ImageFont.load_default(size=max(8, int(36 * scale)))
    for row in range(0, height, max(40, int(300 * scale))):
        text = f"detail {seed}-{row} THE QUICK BROWN FOX jumps over 0123456789"
        draw.text((int(rng.integers(0, width // 3)), row + 20), text, fill=(0, 0, 0), font=font)
    return img


@lru_cache(maxsize=4)
def textured(width: int = 4000, height: int = 3000, *, seed: int = 16, quality: int = 92) -> bytes:
    out = io.BytesIO()
    textured_pixels(width, height, seed=seed).save(out, "JPEG", quality=quality)
    return out.getvalue()
