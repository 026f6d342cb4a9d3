"""Hostile and unusual files, generated (nothing downloaded): broken, truncated, lying headers,
bombs, polyglots, refused formats and odd-but-valid photos. Each builder returns bytes and is
cached, so a test may call it freely.

The PNG, GIF and JPEG structures are edited byte by byte where Pillow would refuse to write
them (a lying IHDR, a zTXt bomb, ten thousand GIF frames); anything Pillow can write is written
by Pillow.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from functools import cache

from PIL import Image

from tests.photos import photo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


# --- PNG ------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk after the signature."""
    chunks, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def png_build(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(png_chunk(kind, payload) for kind, payload in chunks)


@cache
def small_png(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    return photo(*size, fmt="PNG", mode=mode) if mode != "RGB" else photo(*size, fmt="PNG")


def png_insert(chunk: tuple[bytes, bytes], *, before: bytes) -> bytes:
    """The small PNG with `chunk` inserted before the first chunk of type `before`."""
    chunks = png_chunks(small_png())
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == before)
    return png_build([*chunks[:at], chunk, *chunks[at:]])


def png_with_size(width: int, height: int) -> bytes:
    """A lying IHDR (with a valid CRC) over the small PNG's pixel data."""
    chunks = png_chunks(small_png())
    ihdr = struct.pack(">II", width, height) + chunks[0][1][8:]
    return png_build([(b"IHDR", ihdr), *chunks[1:]])


def png_broken_crc(kind: bytes) -> bytes:
    data = bytearray(small_png())
    at = data.find(kind)
    (length,) = struct.unpack(">I", data[at - 4 : at])
    data[at + 4 + length] ^= 0xFF  # first byte of the chunk's CRC
    return bytes(data)


def zlib_zeros(total: int, chunk: int = 1 << 20) -> bytes:
    """A valid zlib stream of `total` zero bytes, built in a fraction of the time compressing
    them takes: after a full flush, every 1 MB of zeros compresses to the same bytes."""
    compressor = zlib.compressobj(9)
    zeros = bytes(chunk)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(total // chunk):
        adler = zlib.adler32(zeros, adler)
    return first[:2] + block * (total // chunk) + b"\x03\x00" + struct.pack(">I", adler)


@cache
def ztxt_bomb() -> bytes:
    """A 100 KB zTXt chunk that inflates to 100 MB, before the pixel data."""
    payload = b"Comment\x00\x00" + zlib_zeros(100 << 20)
    return png_insert((b"zTXt", payload), before=b"IDAT")


@cache
def itxt_bomb() -> bytes:
    """A compressed iTXt (XMP-like) chunk that inflates to 100 MB."""
    payload = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib_zeros(100 << 20)
    return png_insert((b"iTXt", payload), before=b"IDAT")


@cache
def text_flood() -> bytes:
    """Thirty uncompressed 100 KB tEXt chunks: 3 MB of metadata around 64x64 pixels."""
    chunks = png_chunks(small_png())
    flood = [(b"tEXt", b"k%d\x00" % i + b"a" * 100_000) for i in range(30)]
    return png_build([chunks[0], *flood, *chunks[1:]])


@cache
def apng(frames: int, size: tuple[int, int] = (32, 32)) -> bytes:
    images = [Image.new("RGB", size, (i % 256, 40, 90)) for i in range(frames)]
    return encode(images[0], "PNG", save_all=True, append_images=images[1:])


def apng_claiming_frames(count: int) -> bytes:
    """A two-frame APNG whose acTL claims `count` frames."""
    chunks = png_chunks(apng(2))
    edited = [
        (kind, struct.pack(">I", count) + payload[4:] if kind == b"acTL" else payload)
        for kind, payload in chunks
    ]
    return png_build(edited)


@cache
def bilevel_png_bomb(side: int) -> bytes:
    """Real pixel data: a side x side one-bit PNG, a few KB that decode to side^2 pixels."""
    return encode(Image.new("1", (side, side)), "PNG", optimize=True)


# --- GIF --------------------------------------------------------------------------------------


def gif(canvas: tuple[int, int], frames: int, frame_size: tuple[int, int] = (1, 1)) -> bytes:
    """A hand-assembled GIF: `frames` frames of one colour, each `frame_size` at (0, 0)."""
    width, height = canvas
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    pixels = _lzw_zeros(frame_size)
    frame = (
        b"\x21\xf9\x04\x00\x01\x00\x00\x00"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, *frame_size, 0)
        + pixels
    )
    return header + loop + frame * frames + b"\x3b"


@cache
def _lzw_zeros(size: tuple[int, int]) -> bytes:
    """GIF LZW data for `size` pixels of colour 0, as Pillow writes it."""
    img = Image.new("P", size, 0)
    img.putpalette([0, 0, 0, 255, 255, 255])
    data = encode(img, "GIF")
    at = data.index(b"\x2c") + 10  # image descriptor, then LZW minimum code size
    if data[at - 1] & 0x80:  # a local colour table
        at += 3 * 2 ** ((data[at - 1] & 0x07) + 1)
    return data[at:-1]


@cache
def gif_with_trailing_zip() -> bytes:
    """A GIF + ZIP polyglot: a valid animation, and `unzip` finds a file in it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", "<script>alert(document.cookie)</script>")
    return photo(200, 150, fmt="GIF") + out.getvalue()


# --- JPEG ---------------------------------------------------------------------------------


def jpeg_with_size(width: int, height: int, base: bytes | None = None) -> bytes:
    """The frame header (SOF0/SOF2) edited to claim another size."""
    data = bytearray(base or photo(64, 48))
    at = _sof(data)
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _sof(data: bytes | bytearray) -> int:
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at != -1:
            return at
    raise ValueError("no SOF0/SOF2 marker")


def jpeg_scan_corrupted(seed: int = 1) -> bytes:
    """A complete JPEG (it ends with its EOI marker) whose entropy-coded data is garbage."""
    data = bytearray(photo(320, 240))
    start = data.find(b"\xff\xda") + 20
    rng = random.Random(seed)
    for at in range(start, len(data) - 2, 7):
        data[at] = rng.randrange(0, 0xFF)  # never 0xFF: no new markers
    return bytes(data)


@cache
def mpo() -> bytes:
    """A multi-picture (stereo camera) JPEG: two pictures in one file."""
    left = Image.open(io.BytesIO(photo(320, 240))).convert("RGB")
    right = Image.open(io.BytesIO(photo(320, 240, subject="chelsea"))).convert("RGB")
    return encode(left, "MPO", save_all=True, append_images=[right], quality=90)


# --- Other formats and polyglots -----------------------------------------------------------


@cache
def refused_format(name: str) -> bytes:
    img = Image.new("RGB", (64, 64), (30, 60, 90))
    writers = {
        "TIFF": lambda: encode(img, "TIFF"),
        "BMP": lambda: encode(img, "BMP"),
        "ICO": lambda: encode(img, "ICO"),
        "PDF": lambda: encode(img, "PDF"),
        "JPEG2000": lambda: encode(img, "JPEG2000"),
        "TGA": lambda: encode(img, "TGA"),
        "PCX": lambda: encode(img, "PCX"),
        "ZIP": _zip,
        "HTML": lambda: b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "SVG": lambda: (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" '
            b'height="64" onload="alert(1)"><script>fetch("/admin/")</script>'
            b'<rect width="64" height="64"/></svg>'
        ),
        "PHP": lambda: b"<?php system($_GET['c']); ?>",
        "ELF": lambda: b"\x7fELF\x02\x01\x01" + bytes(57) + bytes(range(256)) * 4,
        "PostScript": lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n",
        "random bytes": lambda: random.Random(9).randbytes(4096),
    }
    return writers[name]()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("image.jpg", photo(64, 48))
    return out.getvalue()


HTML_TRAILER = b"<html><body><script>alert(document.cookie)</script></body></html>"
PHP_TRAILER = b"<?php system($_GET['c']); ?>"
