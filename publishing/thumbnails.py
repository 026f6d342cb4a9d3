"""The thumbnail engine: bytes in, stripped and upright JPEG/WebP renditions out.

Pure Python and Pillow: no models, no storage. The speed comes from decoding once, as small
as the largest rendition allows (JPEG DCT scaling via ``draft()``), fixing the orientation on
the reduced image, and making each smaller size from the previous one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from PIL import Image

from publishing import imaging, jpeg

MAX_SIDE = 5000
WATERMARK_FRACTION = 0.18
WATERMARK_MIN_BOX_SIDE = 100
# libwebp's effort (0-6; Pillow and cwebp default to 4), by the output's size. Measured
# (bench/thumbnails.py, docs/thumbnails.md): for 1600x1200, method 0 takes 30-40% less CPU
# than 2 for files 7-14% larger at the same PSNR; from 800 px down, method 2 makes files 6-16%
# smaller than 0 for a few ms; 3-6 cost 2-4x the CPU of 2 for 2-5% smaller files.
WEBP_METHOD = 2
WEBP_LARGE_METHOD = 0
WEBP_LARGE_PIXELS = 1_000_000
# On-demand JPEGs are progressive from this size: ~3-6% smaller than optimised baseline at
# the same quality, for about twice the encode time, which at 400 px is under a millisecond.
PROGRESSIVE_MIN_PIXELS = 100_000
# How much larger than the largest output the draft decode must be. 1.0: the smallest DCT
# scale that covers the box; the Lanczos cascade after it keeps the 400 px output >= 50 dB
# PSNR against a full-size Lanczos on textured photos when the decode is at 1/2 or 1/4 scale.
DRAFT_MARGIN = 1.0
# Pillow's resize reduces by an integer factor (box average) only while the Lanczos pass after
# it still shrinks by at least this much; at 3 the result is within 0.1 dB of a pure Lanczos
# (measured on the textured test photo) and huge reductions (a 49 MP PNG to 100 px) stay cheap.
REDUCING_GAP = 3.0
# A step that shrinks by at most MILD_RATIO to an output of at least BICUBIC_MIN_PIXELS uses
# bicubic (Catmull-Rom, 8 taps at 2:1) instead of Lanczos (12): a third less CPU where the
# pixels are most numerous (2000 -> 1600 and 1600 -> 800 px from a 1/2-scale decode, 60% of
# the engine's resampling time). Measured against a full decode + Lanczos to the same size
# (bench/thumbnails.py): 1600 px -0.2 to +0.1 dB, 800 px 50.3 dB on a smooth photo and 45.1
# on the textured one (Lanczos: 52.3 / 49.0), and the sizes made from them by Lanczos lose
# nothing (400 px 53.2 / 52.1 dB): the softer band of a bicubic step lies above what a
# smaller size can show. Every smaller output is made by Lanczos: bicubic there costs up to
# 9 dB at 400 and 100 px.
MILD_RATIO = 2.0
BICUBIC_MIN_PIXELS = 400_000
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
    webp_method: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    watermark: Image.Image | None = None,
    include_original: bool = False,
    original_max_side: int | None = None,
    original_quality: int = 90,
    scaled_from: tuple[int, int] | None = None,
    jpeg_optimize: bool = False,
) -> list[Rendition]:
    """Render every size in every format from one decode of ``data``, size by size.

    With ``include_original`` the first rendition is the published copy of the original
    (see ``render_public_original``), made from the same decode. The watermark fits inside
    18% of each side of the thumbnail, in its south-east corner, when both sides of the box
    exceed 100 px. Sizes that give the same picture (``400xauto`` and ``400x400`` of a
    landscape) are rendered once and share their bytes. Raises ValueError for a format other
    than JPEG/WEBP and PIL.UnidentifiedImageError (an OSError) for bytes Pillow cannot decode.

    ``scaled_from`` is the upright size of the original when ``data`` is a smaller copy of it
    (a thumbnail): boxes are fitted against the original, so the output has exactly the size a
    render of the original would have. ValueError if a box needs more pixels than ``data`` has.
    ``webp_method`` None: chosen per size (``webp_method_for``). ``jpeg_optimize``: optimised
    Huffman tables, and progressive from PROGRESSIVE_MIN_PIXELS.
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
        as_is = _stripped_jpeg(data, img, orientation) if original_size == full else None
        wanted = _draft_size(targets.values(), original_size if as_is is None else None)
        pixels = imaging.shrink_on_load(img, orientation, wanted)
        with imaging.DECODE_BUDGET.hold(pixels):
            upright = imaging.decode(img, orientation, wanted)
            out = []
            if as_is is not None:
                out.append(Rendition(ORIGINAL_NAME, "JPEG", "image/jpeg", *full, as_is))
            elif original_size is not None:
                upright = _shrink(upright, original_size)
                out.append(_original(upright, original_quality))
            encoding = _Encoding(jpeg_quality, webp_quality, webp_method, background, jpeg_optimize)
            out += _thumbnails(upright, targets, formats, watermark, encoding)
    return out


def downscaled(data: bytes, sizes: Sequence[Size]) -> dict[tuple[int, int], Image.Image]:
    """The upright pixels ``render_thumbnails`` encodes for ``sizes`` (no original), by
    fitted size: the same decode and the same resampling, for measuring their quality."""
    img, orientation = imaging.open_lazily(data)
    with img:
        full = imaging.upright_size(img, orientation)
        targets = {size.fit(*full) for size in sizes}
        upright = imaging.decode(img, orientation, _draft_size(targets, None))
    return _scale_down(upright, targets)


@dataclass(frozen=True)
class _Encoding:
    jpeg_quality: int
    webp_quality: int
    webp_method: int | None
    background: tuple[int, int, int]
    jpeg_optimize: bool


def _thumbnails(
    upright: Image.Image,
    targets: dict[Size, tuple[int, int]],
    formats: list[str],
    watermark: Image.Image | None,
    encoding: _Encoding,
) -> list[Rendition]:
    scaled = _scale_down(upright, set(targets.values()))
    del upright  # the cascade holds what it still needs; free the full decode early
    made: dict[tuple[tuple[int, int], bool, str], Rendition] = {}
    out = []
    for size, target in targets.items():
        marked = watermark is not None and min(size.box(target)) > WATERMARK_MIN_BOX_SIDE
        for fmt in formats:
            done = made.get((target, marked, fmt))
            if done is None:
                thumb = scaled[target]
                if marked and watermark is not None:
                    thumb = imaging.add_watermark(thumb, watermark, WATERMARK_FRACTION)
                done = made[(target, marked, fmt)] = _rendition(size.suffix, thumb, fmt, encoding)
            out.append(replace(done, name=size.suffix))
    return out


def render_one(
    data: bytes,
    size: Size,
    fmt: str = "JPEG",
    *,
    jpeg_quality: int = 85,
    webp_quality: int = 80,
    webp_method: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    watermark: Image.Image | None = None,
    scaled_from: tuple[int, int] | None = None,
) -> Rendition:
    """One size in one format, for on-demand generation; decodes at the smallest DCT scale
    that still covers the box. JPEGs are optimised, and progressive from
    PROGRESSIVE_MIN_PIXELS: a CDN serves them many times. ``scaled_from``: see
    ``render_thumbnails``."""
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
        jpeg_optimize=True,
    )
    return rendition


def render_public_original(
    data: bytes, *, max_side: int | None = None, quality: int = 90
) -> Rendition:
    """The published copy of the original: its own bytes minus every metadata segment when
    it is a baseline or progressive sRGB (or untagged) JPEG needing no rotation or resize;
    otherwise a stripped, upright sRGB re-encode: JPEG, or PNG if it has alpha.

    Safe to publish: no EXIF (so no GPS), XMP, IPTC, comment, trailer or non-sRGB profile.
    """
    (rendition,) = render_thumbnails(
        data, [], include_original=True, original_max_side=max_side, original_quality=quality
    )
    return rendition


def webp_method_for(width: int, height: int) -> int:
    return WEBP_LARGE_METHOD if width * height >= WEBP_LARGE_PIXELS else WEBP_METHOD


def _check_formats(formats: Sequence[str]) -> list[str]:
    checked = [fmt.upper() for fmt in formats]
    if not checked or any(fmt not in ("JPEG", "WEBP") for fmt in checked):
        raise ValueError(f"thumbnail formats must be JPEG and/or WEBP, got {list(formats)}")
    return checked


def _original_size(full: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    return Size(max_side, max_side).fit(*full) if max_side else full


def _stripped_jpeg(data: bytes, img: Image.Image, orientation: int) -> bytes | None:
    """The JPEG's own bytes without metadata, if they can be published as they are."""
    if img.format not in ("JPEG", "MPO") or img.mode != "RGB" or orientation != 1:
        return None
    if not imaging.is_srgb(img.info.get("icc_profile")):
        return None
    return jpeg.strip_metadata(data)


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
    """A Lanczos cascade, largest first, each size from the previous one: later passes
    touch far fewer pixels, and each step's ratio stays small (about 2 for the default
    sizes), where Lanczos is both cheap and exact."""
    scaled = {}
    for target in sorted(targets, key=lambda t: t[0] * t[1], reverse=True):
        img = _shrink(img, target)
        scaled[target] = img
    return scaled


def _shrink(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    if img.size == target:
        return img
    mild = min(img.width / target[0], img.height / target[1]) <= MILD_RATIO
    if mild and target[0] * target[1] >= BICUBIC_MIN_PIXELS:
        return img.resize(target, Image.Resampling.BICUBIC)
    return img.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def _original(img: Image.Image, quality: int) -> Rendition:
    if not imaging.is_opaque(img):
        return _rendition(ORIGINAL_NAME, img, "PNG", _Encoding(quality, 0, 0, (0, 0, 0), False))
    if img.mode != "RGB":  # an opaque RGBA; converting an RGB image would only copy it
        img = img.convert("RGB")
    return _rendition(ORIGINAL_NAME, img, "JPEG", _Encoding(quality, 0, 0, (0, 0, 0), False))


def _rendition(name: str, img: Image.Image, fmt: str, encoding: _Encoding) -> Rendition:
    if fmt == "JPEG":
        img = imaging.flatten(img, encoding.background)
    pixels = img.width * img.height
    data = imaging.encode(
        img,
        fmt,
        quality=encoding.jpeg_quality if fmt != "WEBP" else encoding.webp_quality,
        webp_method=(
            encoding.webp_method
            if encoding.webp_method is not None
            else webp_method_for(img.width, img.height)
        ),
        optimize=encoding.jpeg_optimize,
        progressive=encoding.jpeg_optimize and pixels >= PROGRESSIVE_MIN_PIXELS,
    )
    return Rendition(name, fmt, imaging.CONTENT_TYPES[fmt], img.width, img.height, data)
