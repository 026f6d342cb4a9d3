"""On-demand renders the engine (publishing.thumbnails) does not make: the fill mode (cover the
box, then crop) and AVIF. Same decoding (imaging), same watermark rule, no metadata out.

The crop is placed around a focal point when the image has one, else around the most
"interesting" window: no face detector is bundled, so interest is edge energy on a small
grayscale copy (detail, not flat sky or wall), weighted towards the top of portrait images,
where heads and subjects usually are (the attention idea of libvips' smartcrop, simplified).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageFilter

from publishing import imaging, thumbnails
from publishing.delivery import Wanted

# Pillow's AVIF encoder effort, 0 (slowest, smallest) to 10; bench/formats.py measured 8 at
# about a third of the default 6's CPU for files 4-14% larger.
AVIF_SPEED = 8
SALIENCY_SIDE = 256  # the grayscale copy the edges are found on
SALIENCY_GRID = 64  # cells along the longer side that the window slides over
PORTRAIT_TOP_WEIGHT = 1.5  # a portrait's top row weighs this much more than its bottom row
CONTENT_TYPES = {**imaging.CONTENT_TYPES, "AVIF": "image/avif"}


def render(
    data: bytes,
    wanted: Wanted,
    fmt: str,
    *,
    quality: int,
    background: tuple[int, int, int] = (255, 255, 255),
    watermark: Image.Image | None = None,
    webp_method: int = thumbnails.WEBP_METHOD,
    scaled_from: tuple[int, int] | None = None,
    focal: tuple[float, float] | None = None,
) -> thumbnails.Rendition:
    """One rendition of `wanted` in `fmt` (JPEG, WEBP or AVIF) from `data`, decoded no larger
    than the output needs. `scaled_from`: the original's upright size when `data` is a smaller
    copy (a thumbnail, the published original), so the output has the size a render of the
    original would have. `focal`: (x, y) in [0, 1] of the upright image."""
    img, orientation = imaging.open_lazily(data)
    with img:
        source = imaging.upright_size(img, orientation)
        scaled = wanted.scaled(scaled_from or source)
        decoded = (min(scaled[0], source[0]), min(scaled[1], source[1]))
        upright = imaging.decode(img, orientation, decoded)
    out = resize(upright, scaled)
    if wanted.fill:
        box = (wanted.size.width or scaled[0], wanted.size.height or scaled[1])
        out = out.crop(crop_window(out, box, focal))
    if watermark is not None and min(out.size) > thumbnails.WATERMARK_MIN_BOX_SIDE:
        out = imaging.add_watermark(out, watermark, thumbnails.WATERMARK_FRACTION)
    if fmt == "JPEG":
        out = imaging.flatten(out, background)
    encoded = encode(out, fmt, quality=quality, webp_method=webp_method)
    return thumbnails.Rendition(
        wanted.size.suffix, fmt, CONTENT_TYPES[fmt], out.width, out.height, encoded
    )


def encode(img: Image.Image, fmt: str, *, quality: int, webp_method: int) -> bytes:
    if fmt != "AVIF":
        return imaging.encode(img, fmt, quality=quality, webp_method=webp_method)
    out = io.BytesIO()
    img.save(out, "AVIF", quality=quality, speed=AVIF_SPEED)
    return out.getvalue()


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    shrinking = size[0] < img.width and size[1] < img.height
    # Box-reduce first to about twice the target (Lanczos still anti-aliases the last step).
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0 if shrinking else None)


def crop_window(
    img: Image.Image, box: tuple[int, int], focal: tuple[float, float] | None = None
) -> tuple[int, int, int, int]:
    """The `box`-sized window of `img` (which covers it) centred on `focal`, or else on the
    most detailed region; (left, top, right, bottom)."""
    width, height = box
    if focal is not None:
        left = _clamp(round(focal[0] * img.width - width / 2), img.width - width)
        top = _clamp(round(focal[1] * img.height - height / 2), img.height - height)
    else:
        left, top = salient_offset(img, box)
    return left, top, left + width, top + height


def salient_offset(img: Image.Image, box: tuple[int, int]) -> tuple[int, int]:
    """Where the window of `box` holds the most edge energy (one axis has slack after a
    cover scale; both may, by a pixel or two of rounding)."""
    energy = _energy_grid(img)
    cols, rows = energy.size
    cells = list(energy.tobytes())  # mode L: one byte a cell, row by row
    portrait = img.height > img.width
    row_weight = [
        PORTRAIT_TOP_WEIGHT - (PORTRAIT_TOP_WEIGHT - 1) * y / max(1, rows - 1) if portrait else 1.0
        for y in range(rows)
    ]
    by_row = [sum(cells[y * cols : (y + 1) * cols]) * row_weight[y] for y in range(rows)]
    by_col = [sum(cells[y * cols + x] * row_weight[y] for y in range(rows)) for x in range(cols)]
    left = _best_offset(by_col, box[0] / img.width, img.width - box[0])
    top = _best_offset(by_row, box[1] / img.height, img.height - box[1])
    return left, top


def _energy_grid(img: Image.Image) -> Image.Image:
    gray = img.convert("L")
    gray.thumbnail((SALIENCY_SIDE, SALIENCY_SIDE), Image.Resampling.BOX)
    edges = gray.filter(ImageFilter.FIND_EDGES)
    # The filter's frame is an artefact of the border, not detail.
    inner = edges.crop((1, 1, max(2, edges.width - 1), max(2, edges.height - 1)))
    scale = SALIENCY_GRID / max(inner.size)
    grid = (max(1, round(inner.width * scale)), max(1, round(inner.height * scale)))
    return inner.resize(grid, Image.Resampling.BOX)


def _best_offset(profile: Sequence[float], fraction: float, slack: int) -> int:
    """The offset (in image pixels, 0..slack) of the window covering `fraction` of `profile`
    with the largest sum; the centred one wins ties."""
    if slack <= 0:
        return 0
    cells = len(profile)
    span = max(1, min(cells, round(fraction * cells)))
    if span == cells:  # a slack of a few pixels, finer than the grid: centre it
        return slack // 2
    starts = range(cells - span + 1)
    sums = [sum(profile[start : start + span]) for start in starts]
    centre = (cells - span) / 2
    best = max(starts, key=lambda start: (round(sums[start], 6), -abs(start - centre)))
    return _clamp(round(best / max(1, cells - span) * slack), slack)


def _clamp(value: int, upper: int) -> int:
    return max(0, min(value, upper))
