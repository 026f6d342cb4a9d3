from __future__ import annotations

import io

import pytest
from PIL import Image, JpegImagePlugin

from publishing import imaging
from publishing.thumbnails import (
    Size,
    parse_sizes,
    render_one,
    render_public_original,
    render_thumbnails,
)
from tests.photos import photo, psnr


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The size at which libjpeg decoded each JPEG (after draft()), once per opened file."""
    sizes, seen = [], set()
    original_load = JpegImagePlugin.JpegImageFile.load

    def load(self):
        if id(self) not in seen:
            seen.add(id(self))
            sizes.append(self.size)
        return original_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    return sizes


@pytest.mark.parametrize(
    ("orientation", "size", "decoded"),
    [
        (1, Size(400, 400), (600, 400)),  # 1/4: 1/8 (300x200) would not cover 400x267
        (1, Size(300, 300), (300, 200)),  # 1/8 covers the box exactly
        (1, Size(1000, 1000), (1200, 800)),  # 1/2 covers 1000x667
        (6, Size(300, 100), (200, 300)),  # stored 1600x2400 turned: 150x100 upright needs 1/8
        (6, Size(400, 400), (400, 600)),
    ],
)
def test_on_demand_rendering_decodes_at_the_smallest_dct_scale_that_covers_the_box(
    decoded_sizes, orientation, size, decoded
):
    render_one(photo(2400, 1600, orientation=orientation), size)

    assert decoded_sizes == [decoded]


def test_all_sizes_come_from_one_decode_at_the_scale_of_the_largest(decoded_sizes):
    render_thumbnails(photo(2400, 1600), parse_sizes("100x100,400x400,800x800"))

    assert decoded_sizes == [(1200, 800)]


@pytest.mark.parametrize(
    ("orientation", "decoded"),
    [
        (6, (1600, 2400)),  # the original is re-encoded (turned upright): one full-size decode
        (1, (600, 400)),  # published as it is: decoded only at the thumbnail's scale
    ],
)
def test_the_published_original_and_the_thumbnails_share_one_decode(
    decoded_sizes, monkeypatch, orientation, decoded
):
    calls = []
    original_decode = imaging.decode
    monkeypatch.setattr(imaging, "decode", lambda *a: calls.append(a) or original_decode(*a))
    data = photo(2400, 1600, orientation=orientation)

    renditions = render_thumbnails(data, [Size(400, 400)], include_original=True)

    assert len(calls) == 1
    assert decoded_sizes == [decoded]
    assert [(r.name, max(r.width, r.height)) for r in renditions] == [
        ("original", 2400),
        ("400x400", 400),
        ("400x400", 400),
    ]


def test_a_capped_published_original_decodes_only_what_the_cap_needs(decoded_sizes):
    rendition = render_public_original(photo(2400, 1600), max_side=1000)

    assert (rendition.width, rendition.height) == (1000, 667)
    assert decoded_sizes == [(1200, 800)]


def jpeg_round_trip(img: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer)


@pytest.mark.parametrize("orientation", [1, 6])
def test_the_fast_path_is_as_good_as_a_full_size_lanczos_resize(orientation):
    data = photo(2400, 1600, orientation=orientation)
    with Image.open(io.BytesIO(data)) as img:
        full = img.convert("RGB")
    full = full if orientation == 1 else full.transpose(Image.Transpose.ROTATE_270)

    renditions = render_thumbnails(
        data, parse_sizes("100x100,400x400,800x800,1600x1600"), formats=("JPEG",)
    )

    for rendition in renditions:
        with Image.open(io.BytesIO(rendition.data)) as img:
            reference = full.resize(img.size, Image.Resampling.LANCZOS)
            # Encoding the ideal resize at the same quality is the best JPEG could do.
            best = psnr(jpeg_round_trip(reference, 85), reference)
            assert psnr(img, reference) > best - 0.5, rendition
