"""The thumbnail engine: bytes in, stripped and upright JPEG/WebP renditions out.

Pure Python and Pillow: no models, no storage. The speed comes from decoding once, as small
as the largest rendition allows (JPEG DCT scaling via ``draft()``), fixing the orientation on
the reduced image, and making each smaller size from the previous one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image

from publishing import imaging

MAX_SIDE = 5000
WATERMARK_FRACTION = 0.18
WATERMARK_MIN_BOX_SIDE = 100
# libwebp's effort (0-6; Pillow and cwebp default to 4). Measured (bench/thumbnails.py,
# docs/thumbnails.md): 2 encodes ~2x faster than 3-4 for files ~3-6% larger and -0.2 dB;
# 0-1 add another ~15% in size, 5-6 cost far more CPU for ~2-5% smaller files.
WEBP_METHOD = 2
# How much larger than the largest output the draft decode must be. 1.0 (the smallest DCT
# scale that covers the box) measured 45-47 dB PSNR against a full-size Lanczos; 2.0 gains
# little visible quality for up to 4x the decoded pixels.
DRAFT_MARGIN = 1.0
ORIGINAL_NAME = "original"
_SIZE_RE = re.compile(r"([0-9]+|auto)x([0-9]+|auto)", re.ASCII)


@dataclass(frozen=True)
class Size:
    """A box that thumbnails fit inside; ``None`` (``auto``) follows the other side."""

    width: int | None
    height: int | None

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            raise ValueError("a size needs at least one side that is not 'auto'")
        for side in (self.width, self.height):
            if side is not None and not 1 <= side <= MAX_SIDE:
                raise ValueError(f"size sides must be between 1 and {MAX_SIDE}, got {side}")

    @property
    def suffix(self) -> str:
        return f"{self.width or 'auto'}x{self.height or 'auto'}"

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """Fit ``width``x``height`` inside the box, keeping the aspect ratio, never upscaling."""
        scale = min(
            self.width / width if self.width else math.inf,
            self.height / height if self.height else math.inf,
            1.0,
        )
        return max(1, round(width * scale)), max(1, round(height * scale))

    def box(self, fitted: tuple[int, int]) -> tuple[int, int]:
        """The box with any ``auto`` side replaced by the fitted image's side."""
        return self.width or fitted[0], self.height or fitted[1]


@dataclass(frozen=True)
class Rendition:
    name: str
    format: str
    content_type: str
    width: int
    height: int
    data: bytes

    def __repr__(self) -> str:
        size = f"{self.width}x{self.height}"
        return f"Rendition({self.name} {self.format} {size}, {len(self.data)} bytes)"


def parse_sizes(text: str) -> list[Size]:
    """Parse ``"100x100,400xauto"``; raises ValueError naming the bad entry."""
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise ValueError("no thumbnail sizes given; expected e.g. '100x100,400xauto'")
    sizes = [_parse_size(entry) for entry in entries]
    duplicates = {s.suffix for s in sizes if sizes.count(s) > 1}
    if duplicates:
        raise ValueError(f"duplicate thumbnail sizes: {', '.join(sorted(duplicates))}")
    return sizes


def _parse_size(entry: str) -> Size:
    match = _SIZE_RE.fullmatch(entry)
    if match is None:
        raise ValueError(
            f"bad thumbnail size {entry!r}: expected WIDTHxHEIGHT, each side a whole number "
            "or 'auto', e.g. '400x400' or '400xauto'"
        )
    width, height = (None if side == "auto" else int(side) for side in match.groups())
    try:
        return Size(width, height)
    except ValueError as exc:
        raise ValueError(f"bad thumbnail size {entry!r}: {exc}") from None


def thumbnail_key(md5: str, size: Size, fmt: str) -> str:
    """Storage key of a thumbnail; it always contains ``_`` (originals never do)."""
    if fmt.upper() == "JPEG":
        return f"{md5}_{size.suffix}"
    if fmt.upper() == "WEBP":
        return f"{md5}_{size.suffix}.webp"
    raise ValueError(f"thumbnails are JPEG or WEBP, not {fmt!r}")


def render_thumbnails(
    data: bytes,
    sizes: Sequence[Size],
    *,
    formats: Sequence[str] = ("JPEG", "WEBP"),
    jpeg_quality: int = 85,
    webp_quality: int = 80,
    webp_method: int = WEBP_METHOD,
    background: tuple[int, int, int] = (255, 255, 255),
    watermark: Image.Image | None = None,
    include_original: bool = False,
    original_max_side: int | None = None,
    original_quality: int = 90,
    scaled_from: tuple[int, int] | None = None,
) -> list[Rendition]:
    """Render every size in every format from one decode of ``data``, size by size.

    With ``include_original`` the first rendition is the published copy of the original
    (see ``render_public_original``), made from the same, then full-size, decode. The
    watermark fits inside 18% of each side of the thumbnail, in its south-east corner, when
    both sides of the box exceed 100 px. Raises ValueError for a format other than JPEG/WEBP
    and PIL.UnidentifiedImageError (an OSError) for bytes Pillow cannot decode.

    ``scaled_from`` is the upright size of the original when ``data`` is a smaller copy of it
    (a thumbnail): boxes are fitted against the original, so the output has exactly the size a
    render of the original would have. ValueError if a box needs more pixels than ``data`` has.
    """
    formats = _check_formats(formats)
    if not sizes and not include_original:
        return []
    img, orientation = imaging.open_lazily(data)
    with img:
        full = imaging.upright_size(img, orientation)
        targets = {size: size.fit(*(scaled_from or full)) for size in sizes}
        if any(w > full[0] or h > full[1] for w, h in targets.values()):
            raise ValueError(f"a {full[0]}x{full[1]} copy is too small for {sizes}")
        original_size = _original_size(full, original_max_side) if include_original else None
        upright = imaging.decode(img, orientation, _draft_size(targets.values(), original_size))
    out = []
    if original_size is not None:
        out.append(_original(upright, original_size, original_quality))
    scaled = _scale_down(upright, set(targets.values()))
    for size, target in targets.items():
        thumb = scaled[target]
        if watermark is not None and min(size.box(target)) > WATERMARK_MIN_BOX_SIDE:
            thumb = imaging.add_watermark(thumb, watermark, WATERMARK_FRACTION)
        for fmt in formats:
            quality = jpeg_quality if fmt == "JPEG" else webp_quality
            out.append(_rendition(size.suffix, thumb, fmt, quality, webp_method, background))
    return out


def render_one(
    data: bytes,
    size: Size,
    fmt: str = "JPEG",
    *,
    jpeg_quality: int = 85,
    webp_quality: int = 80,
    webp_method: int = WEBP_METHOD,
    background: tuple[int, int, int] = (255, 255, 255),
    watermark: Image.Image | None = None,
    scaled_from: tuple[int, int] | None = None,
) -> Rendition:
    """One size in one format, for on-demand generation; decodes at the smallest DCT scale
    that still covers the box. ``scaled_from``: see ``render_thumbnails``."""
    (rendition,) = render_thumbnails(
        data,
        [size],
        formats=(fmt,),
        jpeg_quality=jpeg_quality,
        webp_quality=webp_quality,
        webp_method=webp_method,
        background=background,
        watermark=watermark,
        scaled_from=scaled_from,
    )
    return rendition


def render_public_original(
    data: bytes, *, max_side: int | None = None, quality: int = 90
) -> Rendition:
    """A stripped, upright sRGB re-encode of the original: JPEG, or PNG if it has alpha.

    Safe to publish: no EXIF (so no GPS), XMP, comment, trailer or non-sRGB profile.
    """
    img, orientation = imaging.open_lazily(data)
    with img:
        target = _original_size(imaging.upright_size(img, orientation), max_side)
        upright = imaging.decode(img, orientation, _draft_size([], target))
    return _original(upright, target, quality)


def _check_formats(formats: Sequence[str]) -> list[str]:
    checked = [fmt.upper() for fmt in formats]
    if not checked or any(fmt not in ("JPEG", "WEBP") for fmt in checked):
        raise ValueError(f"thumbnail formats must be JPEG and/or WEBP, got {list(formats)}")
    return checked


def _original_size(full: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    return Size(max_side, max_side).fit(*full) if max_side else full


def _draft_size(
    targets: Iterable[tuple[int, int]], original: tuple[int, int] | None
) -> tuple[int, int] | None:
    wanted = [*targets, *([original] if original else [])]
    if not wanted:
        return None
    w, h = max(wanted, key=lambda t: t[0] * t[1])
    return math.ceil(w * DRAFT_MARGIN), math.ceil(h * DRAFT_MARGIN)


def _scale_down(
    img: Image.Image, targets: set[tuple[int, int]]
) -> dict[tuple[int, int], Image.Image]:
    """Largest first, each from the previous one: later passes touch far fewer pixels."""
    scaled = {}
    for target in sorted(targets, key=lambda t: t[0] * t[1], reverse=True):
        img = _shrink(img, target)
        scaled[target] = img
    return scaled


def _shrink(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Lanczos, after a cheap 2x2 (or larger) box reduction when the ratio is 2 or more.

    The box pass never takes more than half the ratio, so Lanczos still does the final
    anti-aliasing: measured against a full-size Lanczos it stays above 43 dB PSNR while
    halving the cost of the 1600 -> 800 -> 400 steps.
    """
    if img.size == target:
        return img
    ratio = min(img.width / target[0], img.height / target[1])
    if ratio < 2:
        return img.resize(target, Image.Resampling.LANCZOS)
    factor = max(2, int(ratio / 2))
    # Pillow box-reduces by int(ratio / reducing_gap); this gap makes that exactly `factor`.
    gap = max(1.0, ratio / (factor + 0.5))
    return img.resize(target, Image.Resampling.LANCZOS, reducing_gap=gap)


def _original(img: Image.Image, target: tuple[int, int], quality: int) -> Rendition:
    img = _shrink(img, target)
    if imaging.is_opaque(img):
        img, fmt = img.convert("RGB"), "JPEG"
    else:
        fmt = "PNG"
    return _rendition(ORIGINAL_NAME, img, fmt, quality, WEBP_METHOD, (255, 255, 255))


def _rendition(
    name: str,
    img: Image.Image,
    fmt: str,
    quality: int,
    webp_method: int,
    background: tuple[int, int, int],
) -> Rendition:
    if fmt == "JPEG":
        img = imaging.flatten(img, background)
    data = imaging.encode(img, fmt, quality=quality, webp_method=webp_method)
    return Rendition(name, fmt, imaging.CONTENT_TYPES[fmt], img.width, img.height, data)
