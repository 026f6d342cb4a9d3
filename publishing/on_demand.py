"""On-demand renders of published images: what exists is served as it is; what is missing is
made once (publishing.budget), from the smallest published copy large enough for it.

The decode budget: a render reads a published thumbnail, or the published original (capped at
PUBLIC_ORIGINAL_MAX_SIDE, JPEG when opaque so it decodes at a reduced DCT scale), never the
private original unless that one is no larger than the cap. A 7000x7000 WebP upload is never
decoded by the web tier: its 4096 px published copy is, at most.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from PIL import Image as PILImage

from infra.storage import read_bytes
from publishing import budget, delivery, jpeg, renders, thumbnails
from publishing.delivery import Wanted
from publishing.services import (
    add_renditions,
    public_storage,
    read_original,
    release_public_objects,
    render_options,
    save_public,
    thumbnail_keys,
)
from uploads.models import Image, State

log = logging.getLogger(__name__)

# A thumbnail made from a published one at least this many times larger (per side) is 0.1-0.2 dB
# PSNR from one made from the original (measured against a full-size Lanczos reference: 400 px
# of a 12 MP photo from its 800 px JPEG, 34.45 against 34.68 dB; the tests' 200 px of a 2 MP
# photo, 0.1 dB) at a twentieth of the cost: it decodes ~0.5 MP, not 12.
DERIVE_MIN_RATIO = 2

Source = tuple[str, bytes, "tuple[int, int] | None"]  # key read, bytes, scaled_from


class SourceUnavailable(Exception):
    """Nothing within the decode budget to render from (the published original is gone)."""


# What rendering needs of a published image; any published row of its bytes will do.
DELIVERY_FIELDS = ("id", "md5", "format", "width", "height", "renditions", "focal_x", "focal_y")


def published_image(md5: str) -> Image:
    """A published image with these bytes, with only DELIVERY_FIELDS loaded; raises
    Image.DoesNotExist."""
    published = Image.objects.filter(md5=md5, state=State.PUBLISHED)
    return published.only(*DELIVERY_FIELDS)[:1].get()


def is_made(image: Image, key: str) -> bool:
    """The renditions of the row say what exists: a key not among them is missing without
    asking the storage (on S3 a round trip); one among them is checked, so an object deleted
    behind the service's back is made again."""
    return key in image.renditions and public_storage().exists(key)


class Made:
    """A rendition rendered now and not kept yet, holding its key's render turn: its bytes can
    be sent first (keeping it took 1.3 ms of a 41 ms request, measured in-process on the
    bench's 12 MP photo: 0.45 writing the file, 0.9 the conditional UPDATE and its commit).
    `keep()` then stores and records it and gives the turn up. A Made dropped without
    `keep()` (a response Django replaced after an error, never closed) gives its turn up when
    it is collected: the turn's context managers are generators, which Python closes then
    (tests/publishing/test_on_demand_keep.py checks it; otherwise the key's process lock
    would stay taken until the worker is recycled, and its requests would get 503)."""

    def __init__(self, image: Image, key: str, rendition: thumbnails.Rendition, turn: ExitStack):
        self.image, self.key, self.rendition = image, key, rendition
        self._turn = turn
        self._stored = self._kept = False

    @property
    def data(self) -> bytes:
        return self.rendition.data

    def store(self) -> None:
        """Write the object now (before a redirect to it); raises what the storage raises."""
        if not self._stored:
            save_public(self.key, self.rendition)
            self._stored = True

    def keep(self) -> bool:
        """Store the object (unless stored) and record it in the image's renditions, then give
        up the turn; False when it could not be stored or recorded (logged, never raised: the
        answer is out already; the next request renders it again) or when the image was taken
        down meanwhile: then the public objects of its bytes are released (unless another
        published image shows them), the object just written with them. Runs once."""
        if self._kept:
            return False
        self._kept = True
        with self._turn:
            try:
                self.store()
                if add_renditions(self.image, [self.key]):
                    return True
                release_public_objects(self.image.md5)
                log.info("image %s was taken down while %s was made", self.image.pk, self.key)
            except Exception:
                log.warning("cannot keep %s of image %s", self.key, self.image.pk, exc_info=True)
        return False


def generate_on_demand(
    image: Image, wanted: Wanted, fmt: str, *, on_miss: Callable[[], None] | None = None
) -> tuple[str, Made | None]:
    """Make one missing rendition of a published image; returns its key, and the rendition
    made now (None when it was there already), whose `keep()` the caller must call, once its
    answer is sent. `on_miss` runs before a render (a rate limit raises there). Raises
    budget.Busy, SourceUnavailable, Image.DoesNotExist (the row is gone). Safe to run twice."""
    key = wanted.key(fmt)
    if is_made(image, key):
        return key, None
    if on_miss is not None:
        on_miss()
    with ExitStack() as stack:  # handed on to Made once rendered, else given up on the way out
        turn = stack.enter_context(budget.render_turn(key))
        if turn.waited:
            image.refresh_from_db(fields=["renditions"])
            if is_made(image, key):
                return key, None
        with turn.rendering():
            rendition = render(image, wanted, fmt)
        return key, Made(image, key, rendition, stack.pop_all())


def render(image: Image, wanted: Wanted, fmt: str) -> thumbnails.Rendition:
    """From the first source that renders; a damaged one (rewritten meanwhile?) is skipped."""
    for key, data, scaled_from in sources(image, wanted, fmt):
        try:
            return render_from(image, data, wanted, fmt, scaled_from)
        except Exception:
            log.warning("cannot render %s from %s", wanted.key(fmt), key, exc_info=True)
    raise SourceUnavailable(f"no source within the decode budget for {wanted.key(fmt)}")


def render_from(
    image: Image, data: bytes, wanted: Wanted, fmt: str, scaled_from: tuple[int, int] | None
) -> thumbnails.Rendition:
    options: dict[str, Any] = render_options()
    if not wanted.fill and fmt in ("JPEG", "WEBP"):  # the engine's, as published ones are
        return thumbnails.render_one(data, wanted.size, fmt, scaled_from=scaled_from, **options)
    quality = {"JPEG": settings.JPEG_QUALITY, "WEBP": settings.WEBP_QUALITY}
    return renders.render(
        data,
        wanted,
        fmt,
        quality=quality.get(fmt, settings.AVIF_QUALITY),
        background=options["background"],
        watermark=options["watermark"],
        scaled_from=scaled_from,
        focal=focal_point(image),
    )


def focal_point(image: Image) -> tuple[float, float] | None:
    if image.focal_x is None or image.focal_y is None:
        return None
    return image.focal_x, image.focal_y


def sources(image: Image, wanted: Wanted, fmt: str) -> Iterator[Source]:
    """A published thumbnail large enough, else the published original, else the private
    original if it is no larger than the published one may be."""
    derived = derivation_source(image, wanted, fmt)
    if derived is not None:
        yield derived
    public = published_original(image, wanted)
    if public is not None:
        yield public
    cap = settings.PUBLIC_ORIGINAL_MAX_SIDE
    if image.width * image.height <= cap * cap:
        yield "original", read_original(image), None


def published_original(image: Image, wanted: Wanted) -> Source | None:
    try:
        data = read_public(image.md5)
        size = jpeg.frame_size(data) or _opened_size(data)  # stored upright
    except Exception:  # storage (botocore's errors are not OSErrors) or decoding
        log.warning("the published original of image %s is unreadable", image.pk)
        return None
    stored = (image.width, image.height)
    full = stored if (stored[0] >= stored[1]) == (size[0] >= size[1]) else stored[::-1]
    # Capped: sizes are fitted against the real original while the copy covers them; larger
    # ones are made as large as the copy allows.
    target = wanted.scaled(full)
    covers = target[0] <= size[0] and target[1] <= size[1]
    return image.md5, data, full if covers and size != full else None


def derivation_source(image: Image, wanted: Wanted, fmt: str) -> Source | None:
    """The smallest published thumbnail of `image` with at least DERIVE_MIN_RATIO times the
    pixels per side that `wanted` needs, with the upright size of the original; None when
    there is none, or when deriving would change the result: a watermark (published
    thumbnails over 100 px carry it already). JPEG outputs, and any output of a JPEG
    original, come from JPEG thumbnails; the others from WebP ones, which keep the alpha that
    JPEG thumbnails flatten. Only thumbnails of the current THUMBNAIL_SIZES qualify (never an
    on-demand size, nor one an older configuration made). A source that cannot be read (any
    storage error) is skipped, not an error."""
    if settings.WATERMARK_PATH:
        return None
    extension = None if fmt == "JPEG" or image.format == "JPEG" else "webp"
    current = set(thumbnail_keys(image.md5))
    # The row keeps the stored (not the upright) size: try both and let the source decide.
    uprights = {(image.width, image.height), (image.height, image.width)}
    candidates = []
    for key in image.renditions:
        if key not in current:  # first: on-demand keys outnumber these as they are made
            continue
        match = delivery.KEY.fullmatch(key)
        if match is None or match["fill"] or match["ext"] != extension:
            continue
        (box,) = thumbnails.parse_sizes(match["size"])
        fits = {full: box.fit(*full) for full in uprights}
        if all(_covers(fits[full], wanted.scaled(full)) for full in uprights):
            candidates.append((min(w * h for w, h in fits.values()), key, fits))
    for _, key, fits in sorted(candidates):
        try:
            data = read_public(key)
            with PILImage.open(io.BytesIO(data)) as source:
                actual = source.size
        except Exception:  # storage (botocore's errors are not OSErrors) or decoding
            log.warning("thumbnail %s of image %s is unreadable; trying another", key, image.pk)
            continue
        for full, fitted in fits.items():
            if fitted == actual:
                return key, data, full
    return None


def read_public(key: str) -> bytes:
    return read_bytes(public_storage(), key)


def _opened_size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as img:
        return img.size


def _covers(source: tuple[int, int], target: tuple[int, int]) -> bool:
    return all(s >= DERIVE_MIN_RATIO * t for s, t in zip(source, target, strict=True))
