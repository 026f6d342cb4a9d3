"""Decoding and encoding for the thumbnail engine: pure Pillow, no Django.

Decoding turns any supported upload (JPEG, PNG, GIF, WebP, HEIC, first frame only) into an
upright 8-bit sRGB image in mode RGB or RGBA with an empty ``info`` dict, so nothing the
source carried (EXIF, GPS, XMP, ICC, comments) can reach an encoder.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import pillow_heif
from PIL import Image, ImageCms

pillow_heif.register_heif_opener()
# Pillow allocates pixels in blocks of 16 MiB. Once glibc's malloc has seen such a block freed
# it serves the next ones from its per-thread heaps and keeps them there when freed: after a
# few 49 MP decodes on 4 threads a worker held far more than its decode budget. Blocks above
# glibc's largest mmap threshold (32 MiB) are always mapped, and unmapped when freed.
Image.core.set_block_size(64 * 1024 * 1024)

ORIENTATION_TAG = 0x0112
# What a viewer does to the stored pixels for each EXIF orientation (see ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WITH_ALPHA = ("RGBA", "LA", "La", "PA", "RGBa")
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ICC_BASE_MODE = {"RGB ": "RGB", "CMYK": "CMYK", "GRAY": "L"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "WEBP": "image/webp", "PNG": "image/png"}


def open_lazily(data: bytes) -> tuple[Image.Image, int]:
    """Open without decoding pixels; returns the image and its EXIF orientation (1-8)."""
    img = Image.open(io.BytesIO(data))
    # The bytes are all in memory: decode them in one block instead of Pillow's 64 KiB ones,
    # at whose ends libjpeg suspends and resumes (measured: 4% fewer instructions, 12 MP JPEG).
    img.decodermaxblock = max(img.decodermaxblock, len(data))
    orientation = img.getexif().get(ORIENTATION_TAG, 1)
    return img, orientation if orientation in range(1, 9) else 1


class PixelBudget:
    """How many decoded pixels the threads of one process may hold at once; a decode that
    would exceed it waits until enough are released. One decode larger than the whole budget
    waits for all of it, so it runs alone rather than never."""

    def __init__(self, pixels: int) -> None:
        self.limit = pixels
        self.held = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._changed:
            pixels = min(pixels, self.limit)
            self._changed.wait_for(lambda: self.held + pixels <= self.limit)
            self.held += pixels
        try:
            yield
        finally:
            with self._changed:
                self.held -= pixels
                self._changed.notify_all()


# Resized at start-up from settings.DECODE_PIXEL_BUDGET (publishing's AppConfig.ready).
DECODE_BUDGET = PixelBudget(64_000_000)


def upright_size(img: Image.Image, orientation: int) -> tuple[int, int]:
    w, h = img.size
    return (h, w) if orientation >= 5 else (w, h)


def shrink_on_load(img: Image.Image, orientation: int, at_least: tuple[int, int] | None) -> int:
    """Ask the decoder for the smallest size that still covers ``at_least`` (upright pixels);
    returns how many pixels the decode will make. Only JPEG can (libjpeg scales by 1/2, 1/4
    or 1/8 while decoding); PNG, WebP, GIF and HEIC decode at full size. ``draft()`` only works
    before anything loads the image, so this must come first."""
    if at_least is not None:
        w, h = at_least
        img.draft("RGB", (h, w) if orientation >= 5 else (w, h))
    return img.width * img.height


def decode(img: Image.Image, orientation: int, at_least: tuple[int, int] | None) -> Image.Image:
    """Decode the first frame once, as small as ``at_least`` (upright pixels) allows."""
    shrink_on_load(img, orientation, at_least)
    icc = img.info.get("icc_profile")
    img.load()
    img = to_srgb(_to_8_bit(img), icc)
    img.info = {}
    method = _TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


def _to_8_bit(img: Image.Image) -> Image.Image:
    if img.mode in _SIXTEEN_BIT:
        return img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if img.mode == "F":
        return img.convert("L")
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:
        return img.convert("RGBA")
    if img.mode == "P":
        return img.convert("RGB")
    if img.mode == "1":
        return img.convert("L")
    return img


def is_srgb(icc: bytes | None) -> bool:
    """No profile, or one that describes sRGB."""
    return not icc or _is_srgb(icc)


def to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    alpha = img.mode in _WITH_ALPHA
    out_mode = "RGBA" if alpha else "RGB"
    if icc and not _is_srgb(icc):
        try:
            return _icc_convert(img, icc, out_mode)
        except (ImageCms.PyCMSError, OSError, ValueError, KeyError):
            pass  # A broken or unusual profile must not fail the upload: assume sRGB.
    return img if img.mode == out_mode else img.convert(out_mode)


def _icc_convert(img: Image.Image, icc: bytes, out_mode: str) -> Image.Image:
    base = _ICC_BASE_MODE[_profile(icc).profile.xcolor_space]
    if out_mode == "RGBA" and base == "RGB":
        in_mode = "RGBA"
    elif out_mode == "RGBA":
        alpha = img.getchannel("A")
        rgb = _icc_convert(img.convert(base), icc, "RGB").convert("RGBA")
        rgb.putalpha(alpha)
        return rgb
    else:
        in_mode = base
    if img.mode != in_mode:
        img = img.convert(in_mode)
    return _transform(icc, in_mode, out_mode).apply(img)


@lru_cache(maxsize=32)
def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


@lru_cache(maxsize=32)
def _is_srgb(icc: bytes) -> bool:
    try:
        return "srgb" in ImageCms.getProfileDescription(_profile(icc)).lower()
    except (ImageCms.PyCMSError, OSError):
        return True  # Unreadable: treat as sRGB rather than guess another space.


@lru_cache(maxsize=32)
def _transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    # NOCACHE: the transform is shared between threads, and lcms's one-pixel cache is not.
    return ImageCms.buildTransform(
        _profile(icc),
        _SRGB,
        in_mode,
        out_mode,
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
        flags=ImageCms.Flags.NOCACHE,
    )


def flatten(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if img.mode != "RGBA":
        return img
    flat = Image.new("RGB", img.size, background)
    flat.paste(img, mask=img.getchannel("A"))
    return flat


def is_opaque(img: Image.Image) -> bool:
    return img.mode != "RGBA" or img.getchannel("A").getextrema()[0] == 255


def add_watermark(img: Image.Image, mark: Image.Image, fraction: float) -> Image.Image:
    """Paste ``mark`` into the south-east corner, fit inside ``fraction`` of each side."""
    box = (max(1, int(img.width * fraction)), max(1, int(img.height * fraction)))
    scaled = mark.convert("RGBA")
    scaled.thumbnail(box, Image.Resampling.LANCZOS)
    out = img.copy()
    corner = (img.width - scaled.width, img.height - scaled.height)
    if out.mode == "RGBA":
        out.alpha_composite(scaled, corner)
    else:
        out.paste(scaled, corner, scaled)
    return out


def encode(
    img: Image.Image,
    fmt: str,
    *,
    quality: int,
    webp_method: int = 4,
    optimize: bool = False,
    progressive: bool = False,
) -> bytes:
    """Encode with no metadata at all. JPEG ``optimize`` (Huffman tables for this image)
    makes files ~5-8% smaller for about twice the encode time; ``progressive`` another few
    percent on large images for twice that again."""
    out = io.BytesIO()
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=quality, optimize=optimize, progressive=progressive)
    elif fmt == "WEBP":
        img.save(out, "WEBP", quality=quality, method=webp_method)
    elif fmt == "PNG":
        img.save(out, "PNG", compress_level=6)
    else:
        raise ValueError(f"unsupported output format {fmt!r}; use JPEG, WEBP or PNG")
    return out.getvalue()
