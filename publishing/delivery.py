"""What a delivery request asks for: the key grammar, signed URLs and the format an `Accept`
header gets.

Keys: `<md5>_<W>x<H>[_fill][.jpg|.webp|.avif]`. Without an extension the format is negotiated
(AVIF, then WebP, then JPEG); `.jpg` asks for JPEG, stored under the extensionless key as ever.
Unsigned requests get the fit mode in the sizes of ON_DEMAND_SIZES; any size up to 5000 px a
side and the fill mode need a signed URL (publishing.signing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from PIL import features

from publishing import signing, thumbnails

KEY = re.compile(
    r"(?P<md5>[0-9a-f]{32})_(?P<size>[0-9a-z]+x[0-9a-z]+)(?P<fill>_fill)?"
    r"(?:\.(?P<ext>jpg|webp|avif))?",
    re.ASCII,
)
EXTENSIONS = {"JPEG": "", "WEBP": ".webp", "AVIF": ".avif"}
FORMAT_OF_EXTENSION = {"jpg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
MEDIA_TYPES = {"AVIF": "image/avif", "WEBP": "image/webp"}


class SignatureRequired(ValueError):
    """A well-formed key that only a signed URL may ask for."""


class BadSignature(ValueError):
    pass


@dataclass(frozen=True)
class Wanted:
    md5: str
    size: thumbnails.Size
    fill: bool = False
    fmt: str | None = None  # None: chosen from the request's Accept header

    def key(self, fmt: str) -> str:
        """The public object's key; fit JPEG/WebP keys are the engine's (thumbnail_key)."""
        mode = "_fill" if self.fill else ""
        return f"{self.md5}_{self.size.suffix}{mode}{EXTENSIONS[fmt]}"

    def scaled(self, full: tuple[int, int]) -> tuple[int, int]:
        """The size the whole upright image of size `full` is scaled to before any crop."""
        if not self.fill:
            return self.size.fit(*full)
        width, height = self.size.width or 1, self.size.height or 1
        scale = max(width / full[0], height / full[1])
        return max(width, round(full[0] * scale)), max(height, round(full[1] * scale))


@cache
def avif_available() -> bool:
    return bool(features.check("avif"))


def parse(key: str, *, signed: bool = False) -> Wanted:
    """A key → what it asks for. ValueError when malformed or unavailable; SignatureRequired
    when it is outside what unsigned requests may ask (`signed` says it was signed)."""
    match = KEY.fullmatch(key)
    if match is None:
        raise ValueError("expected a key like <md5>_400x400 or <md5>_400xauto.webp")
    (size,) = thumbnails.parse_sizes(match["size"])
    fill = bool(match["fill"])
    if fill and (size.width is None or size.height is None):
        raise ValueError("the fill mode needs both sides, e.g. 400x300_fill")
    fmt = FORMAT_OF_EXTENSION[match["ext"]] if match["ext"] else None
    if fmt == "AVIF" and not avif_available():
        raise ValueError("AVIF is not offered here")
    if not signed and (fill or size not in _on_demand_sizes(settings.ON_DEMAND_SIZES)):
        raise SignatureRequired(f"{size.suffix}{match['fill'] or ''} needs a signed URL")
    return Wanted(match["md5"], size, fill, fmt)


def parse_signed(signature: str, rest: str, expires: str | None, *, now: float) -> Wanted:
    """`/s/<signature>/<rest>[?expires=<unix time>]`; the expiry, when present, is signed
    too (the message is `<rest>?expires=<time>`). BadSignature when it does not verify or has
    expired; LookupError when signed URLs are off (no URL_SIGNING_KEYS)."""
    keys = settings.URL_SIGNING_KEYS
    if not keys:
        raise LookupError("signed URLs are off")
    message = rest if expires is None else f"{rest}?expires={expires}"
    if not signing.verify(signature, message, keys):
        raise BadSignature("the signature does not match")
    if expires is not None and (not expires.isdigit() or int(expires) < now):
        raise BadSignature("the signed URL has expired")
    return parse(rest, signed=True)


@cache
def _on_demand_sizes(text: str) -> frozenset[thumbnails.Size]:
    return frozenset(thumbnails.parse_sizes(text))


def negotiate(wanted: Wanted, accept: str) -> str:
    """The format to send: the key's own, else the best of AVIF, WebP, JPEG that `accept`
    lists by name with a non-zero quality (`image/*` says nothing about AVIF or WebP)."""
    if wanted.fmt is not None:
        return wanted.fmt
    accepted = accepted_types(accept)
    if "image/avif" in accepted and avif_available():
        return "AVIF"
    if "image/webp" in accepted:
        return "WEBP"
    return "JPEG"


def accepted_types(accept: str) -> set[str]:
    types = set()
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            types.add(media.lower())
    return types
