"""Realistic test photographs, built offline from real photos that scikit-image ships.

Every function returns encoded bytes and is cached, so tests can call them freely.

- ``photo(width=1200, height=800, *, fmt="JPEG", quality=90, subject="astronaut",
  orientation=None, gps=False, icc=None, mode="RGB", progressive=False, comment=None,
  xmp=False, trailer=b"")`` -- a camera-like photo: the subject is cropped to the aspect
  ratio, upscaled and given sensor grain, so a 12 MP JPEG at quality 90 weighs ~3-6 MB.
  It always carries a small camera EXIF block (Make, Model, DateTime) where the format can.
  ``orientation`` (1-8) writes the EXIF tag and stores the pixels transposed so that a viewer
  honouring the tag shows exactly ``upright(width, height, subject)``. ``gps`` adds a GPS IFD.
  ``icc="adobe_rgb"`` stores the pixels in an Adobe-RGB-like space and embeds that profile
  (a colour-managed viewer still shows the sRGB photo). ``mode`` is one of RGB, L, CMYK
  (JPEG), I;16 (16-bit grey PNG), RGBA, LA, P (PNG/WebP/GIF; alpha is a soft-edged ellipse).
- ``upright(width, height, subject="astronaut") -> PIL.Image`` -- the reference pixels.
- ``flat(color, size=(64, 64), *, fmt="JPEG", icc=None, quality=95)`` -- a uniform patch.
- ``drawing(size=(800, 600), fmt="PNG")`` -- black line art on white.
- ``animated(fmt="GIF", frames=3, size=(200, 150))`` -- frame *i* shows ``FRAME_SUBJECTS[i]``.
- ``heic(width=1200, height=800, subject="astronaut")``.
- ``safe_photos()`` -- {"person", "pet", "food", "landscape", "vehicle"} -> 1200x800 JPEG
  bytes ("landscape" is an outdoor dusk scene: a rocket on its launch pad).
- ``exif_of(data) -> PIL.Image.Exif``, ``has_gps(data) -> bool``, ``psnr(a, b) -> float`` (dB).
- ``adobe_rgb_profile() -> bytes`` -- the ICC profile used by ``icc="adobe_rgb"``.
"""

from __future__ import annotations

import importlib.util
import io
import math
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageOps, PngImagePlugin

SUBJECTS = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",
}
KINDS = {
    "person": "astronaut",
    "pet": "chelsea",
    "food": "coffee",
    "landscape": "rocket",
    "vehicle": "motorcycle",
}
FRAME_SUBJECTS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
# Stored pixels = inverse of what a viewer applies for the tag (see ImageOps.exif_transpose).
_STORE_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
XMP_PACKET = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool='
    b'"PinsterCam 1.0"/></rdf:RDF></x:xmpmeta>'
)
GPS_IFD = 0x8825


def _data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("tests/photos.py needs scikit-image (pip install scikit-image)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=8)
def _source(subject: str) -> Image.Image:
    name = SUBJECTS[KINDS.get(subject, subject)]
    with Image.open(_data_dir() / name) as img:
        return img.convert("RGB")


def upright(width: int, height: int, subject: str = "astronaut") -> Image.Image:
    """The photo as a viewer should display it (a fresh copy)."""
    return _upright(width, height, subject).copy()


@lru_cache(maxsize=6)
def _upright(width: int, height: int, subject: str) -> Image.Image:
    src = ImageOps.fit(_source(subject), (width, height), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(width * 7919 + height)
    pixels = np.asarray(src, dtype=np.float32)
    # Upscaled sources are too smooth to compress like a camera file: add luma and chroma grain.
    luma = rng.standard_normal((height, width, 1), dtype=np.float32) * 6.0
    chroma = rng.standard_normal((height, width, 3), dtype=np.float32) * 2.0
    pixels += luma + chroma
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _icc_tag_xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in xyz)


@lru_cache(maxsize=1)
def adobe_rgb_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries and gamma 563/256."""
    name = b"Adobe RGB (1998) compatible\0"
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + b"\0" * 78,
        b"cprt": b"text\0\0\0\0No copyright, test profile\0",
        b"wtpt": _icc_tag_xyz((0.96421, 1.0, 0.82491)),
        b"rXYZ": _icc_tag_xyz((0.60974, 0.31111, 0.01947)),
        b"gXYZ": _icc_tag_xyz((0.20528, 0.62567, 0.06087)),
        b"bXYZ": _icc_tag_xyz((0.14919, 0.06322, 0.74457)),
    }
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563)
    for sig in (b"rTRC", b"gTRC", b"bTRC"):
        tags[sig] = curve
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags.items():
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    total = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", total, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24
    header += struct.pack(">I", 0) + _icc_tag_xyz((0.96421, 1.0, 0.82491))[8:] + b"lcms"
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def _with_icc(img: Image.Image, icc: str | None) -> tuple[Image.Image, bytes | None]:
    if icc is None:
        return img, None
    if icc != "adobe_rgb":
        raise ValueError(f"unknown icc {icc!r}; only 'adobe_rgb'")
    target = ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb_profile()))
    srgb = ImageCms.createProfile("sRGB")
    return ImageCms.profileToProfile(img, srgb, target, outputMode="RGB"), adobe_rgb_profile()


def _alpha_mask(size: tuple[int, int]) -> Image.Image:
    w, h = size
    small = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(small).ellipse((6, 6, 57, 57), fill=255)
    return small.resize((w, h), Image.Resampling.BILINEAR)


def _with_mode(img: Image.Image, mode: str) -> Image.Image:
    if mode in ("RGB", "L", "CMYK"):
        return img.convert(mode)
    if mode == "I;16":
        grey = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey.astype("<u2"))
    if mode in ("RGBA", "LA"):
        out = img.convert(mode)
        out.putalpha(_alpha_mask(img.size))
        return out
    if mode == "P":
        return img.quantize(256, dither=Image.Dither.NONE)
    raise ValueError(f"unsupported mode {mode!r}")


def _camera_exif(orientation: int | None, gps: bool) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Pinster", "PinsterCam 1"
    exif[0x0132] = "2024:05:01 12:00:00"
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.25)}
    return exif


def _encode(img: Image.Image, fmt: str, exif: Image.Exif | None = None, **opts: object) -> bytes:
    fmt = fmt.upper()
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        raise ValueError(f"JPEG cannot hold mode {img.mode}; pass fmt='PNG' or 'WEBP'")
    if exif is not None and fmt in ("JPEG", "PNG", "WEBP"):
        opts["exif"] = exif
    elif exif is not None and fmt == "HEIF":
        # As bytes: pillow-heif then writes the orientation as the container's transforms
        # (irot/imir), as phones do; an Exif object it would drop.
        opts["exif"] = exif.tobytes()
    if opts.pop("xmp", None):
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", XMP_PACKET.decode())
            opts["pnginfo"] = info
        else:
            opts["xmp"] = XMP_PACKET
    out = io.BytesIO()
    img.save(out, fmt, **{k: v for k, v in opts.items() if v is not None})
    return out.getvalue()


@lru_cache(maxsize=64)
def photo(
    width: int = 1200,
    height: int = 800,
    *,
    fmt: str = "JPEG",
    quality: int = 90,
    subject: str = "astronaut",
    orientation: int | None = None,
    gps: bool = False,
    icc: str | None = None,
    mode: str = "RGB",
    progressive: bool = False,
    comment: str | bytes | None = None,
    xmp: bool = False,
    trailer: bytes = b"",
) -> bytes:
    img, icc_bytes = _with_icc(_upright(width, height, subject), icc)
    if orientation not in (None, 1):
        img = img.transpose(_STORE_TRANSPOSE[orientation])
    img = _with_mode(img, mode)
    opts: dict[str, object] = {"icc_profile": icc_bytes, "xmp": xmp}
    if fmt.upper() in ("JPEG", "WEBP"):
        opts["quality"] = quality
    if fmt.upper() == "JPEG":
        opts.update(progressive=progressive or None, comment=comment)
    return _encode(img, fmt, _camera_exif(orientation, gps), **opts) + trailer


@lru_cache(maxsize=16)
def flat(
    color: tuple[int, ...] | str,
    size: tuple[int, int] = (64, 64),
    *,
    fmt: str = "JPEG",
    icc: str | None = None,
    quality: int = 95,
) -> bytes:
    """A uniform patch of an sRGB colour (with icc, stored converted to that space)."""
    img, icc_bytes = _with_icc(Image.new("RGB", size, color), icc)
    opts: dict[str, object] = {"icc_profile": icc_bytes}
    if fmt.upper() in ("JPEG", "WEBP"):
        opts["quality"] = quality
    return _encode(img, fmt, **opts)


@lru_cache(maxsize=4)
def drawing(size: tuple[int, int] = (800, 600), fmt: str = "PNG") -> bytes:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    for i in range(12):
        draw.line((0, i * h // 12, w, h - i * h // 12), fill="black", width=2)
        draw.ellipse((w // 4 + i * 8, h // 4 + i * 6, 3 * w // 4 - i * 8, 3 * h // 4 - i * 6))
    return _encode(img, fmt)


@lru_cache(maxsize=8)
def animated(fmt: str = "GIF", frames: int = 3, size: tuple[int, int] = (200, 150)) -> bytes:
    images = [_upright(*size, FRAME_SUBJECTS[i % len(FRAME_SUBJECTS)]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


@lru_cache(maxsize=4)
def heic(width: int = 1200, height: int = 800, subject: str = "astronaut") -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    # With a camera's EXIF and GPS position, as a phone's HEIC has.
    return _encode(_upright(width, height, subject), "HEIF", _camera_exif(None, True), quality=90)


@lru_cache(maxsize=1)
def safe_photos() -> dict[str, bytes]:
    return {kind: photo(1200, 800, subject=subject) for kind, subject in KINDS.items()}


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two same-sized images (compared as RGB)."""
    diff = np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def exif_of(data: bytes) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as img:
        return img.getexif()


def has_gps(data: bytes) -> bool:
    exif = exif_of(data)
    return GPS_IFD in exif and bool(exif.get_ifd(GPS_IFD))


HUGE_SIDE = 7000  # 49 MP, just under MAX_IMAGE_PIXELS' default of 50 MP


def huge_picture(fmt: str, seed: int) -> bytes:
    """7000x7000 (49 MP) in a small file: flat shapes on a gradient."""
    from PIL import Image, ImageDraw

    img = Image.linear_gradient("L").resize((HUGE_SIDE, HUGE_SIDE)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for i in range(12):
        x, y = (seed * 977 + i * 613) % HUGE_SIDE, (seed * 131 + i * 1361) % HUGE_SIDE
        draw.ellipse((x, y, x + 900, y + 600), fill=((i * 40) % 256, 120, (seed * 60) % 256))
    out = io.BytesIO()
    if fmt == "WEBP":
        img.save(out, "WEBP", quality=60, method=0)
    else:
        img.save(out, "PNG", compress_level=1)
    return out.getvalue()
