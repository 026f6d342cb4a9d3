"""Placeholders a client paints before an image loads: a BlurHash (https://blurha.sh) and the
dominant colour, made at publication from the smallest published thumbnail (a few KB to
read and decode, never the original)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence

import blurhash
from PIL import Image

from publishing import imaging, thumbnails
from publishing.delivery import KEY

log = logging.getLogger(__name__)

BLURHASH_SIDE = 32  # the encoder's cost grows with the pixels; 32 px keeps every detail it can show
COMPONENTS_LONG, COMPONENTS_SHORT = 4, 3  # along the longer and the shorter side
PALETTE_COLOURS = 6


def smallest_thumbnail(keys: Sequence[str]) -> str | None:
    """The key of the smallest fit-mode thumbnail among `keys`, JPEG before WebP."""
    sized = []
    for key in keys:
        match = KEY.fullmatch(key)
        if match is not None and not match["fill"]:
            (size,) = thumbnails.parse_sizes(match["size"])
            area = (size.width or size.height or 0) * (size.height or size.width or 0)
            sized.append((area, match["ext"] is not None, key))
    return min(sized)[2] if sized else None


def placeholder(data: bytes, background: tuple[int, int, int]) -> dict[str, str]:
    """{"blurhash": ..., "dominant_color": "#rrggbb"} of an image (a thumbnail's bytes)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        rgb = imaging.flatten(img.convert("RGBA"), background)
    return {"blurhash": blurhash_of(rgb), "dominant_color": dominant_color(rgb)}


def blurhash_of(img: Image.Image) -> str:
    small = img.copy()
    small.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BOX)
    width, height = small.size
    raw = small.tobytes()  # RGB, row by row
    rows = [
        [tuple(raw[i : i + 3]) for i in range(y * width * 3, (y + 1) * width * 3, 3)]
        for y in range(height)
    ]
    landscape = width >= height
    x = COMPONENTS_LONG if landscape else COMPONENTS_SHORT
    y = COMPONENTS_SHORT if landscape else COMPONENTS_LONG
    return str(blurhash.encode(rows, components_x=x, components_y=y))


def dominant_color(img: Image.Image) -> str:
    """The colour of the largest cluster of a median-cut palette: what most of the picture
    is (a mean would turn a red flower on a green lawn brown)."""
    small = img.copy()
    small.thumbnail((64, 64), Image.Resampling.BOX)
    palette_image = small.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    counts = palette_image.getcolors() or [(1, 0)]
    index = int(max(counts)[1])  # type: ignore[call-overload]
    palette = palette_image.getpalette() or [0, 0, 0]
    red, green, blue = palette[index * 3 : index * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def for_published(
    keys: Sequence[str], read: Callable[[str], bytes], background: tuple[int, int, int]
) -> dict[str, str]:
    """The placeholder of a just-published image from its smallest thumbnail among `keys`,
    read with `read(key) -> bytes`; {} (and a warning) when it cannot be made: a placeholder
    never holds up a publication."""
    key = smallest_thumbnail(keys)
    if key is None:
        return {}
    try:
        return placeholder(read(key), background)
    except Exception:
        log.warning("no placeholder from thumbnail %s", key, exc_info=True)
        return {}
