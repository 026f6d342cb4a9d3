from __future__ import annotations

import io

import pytest
from PIL import Image

from publishing.thumbnails import Size, render_one, render_public_original, render_thumbnails
from tests.photos import photo, psnr, upright

# A wrong orientation of this photo scores ~10-13 dB; the right one, after JPEG, ~30+.
UPRIGHT_PSNR = 27


def reference(size: tuple[int, int]) -> Image.Image:
    return upright(600, 400).resize(size, Image.Resampling.LANCZOS)


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def test_the_reference_check_tells_a_rotated_photo_from_an_upright_one():
    turned = reference((300, 200)).transpose(Image.Transpose.ROTATE_180)

    assert psnr(turned, reference((300, 200))) < 15


@pytest.mark.parametrize("orientation", range(1, 9))
def test_it_applies_every_exif_orientation(orientation):
    data = photo(600, 400, orientation=orientation)

    renditions = render_thumbnails(data, [Size(300, 300), Size(100, 100)])

    for rendition in renditions:
        out = decoded(rendition.data)
        assert out.size == (rendition.width, rendition.height)
        assert psnr(out, reference(out.size)) > UPRIGHT_PSNR, rendition


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_it_fits_a_rotated_photo_in_a_narrow_box_by_its_displayed_shape(orientation):
    rendition = render_one(photo(600, 400, orientation=orientation), Size(300, 100))

    assert (rendition.width, rendition.height) == (150, 100)
    assert psnr(decoded(rendition.data), reference((150, 100))) > UPRIGHT_PSNR


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_published_original_is_upright(orientation):
    rendition = render_public_original(photo(600, 400, orientation=orientation))

    assert (rendition.width, rendition.height) == (600, 400)
    assert psnr(decoded(rendition.data), upright(600, 400)) > UPRIGHT_PSNR


def test_an_out_of_range_orientation_tag_is_ignored():
    img = upright(300, 200)
    exif = Image.Exif()
    exif[0x0112] = 9
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90, exif=exif)

    rendition = render_one(buffer.getvalue(), Size(150, 150))

    assert (rendition.width, rendition.height) == (150, 100)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_heic_is_upright_whatever_its_orientation(orientation):
    # The orientation is stored as the container's transforms (irot/imir), as phones write it;
    # pillow-heif applies them when it reads and reports EXIF orientation 1, so the engine must
    # not turn the pixels a second time.
    data = photo(600, 400, fmt="HEIF", orientation=orientation)
    assert data[4:12] == b"ftypheic"

    rendition = render_one(data, Size(300, 300))

    assert (rendition.width, rendition.height) == (300, 200)
    assert psnr(decoded(rendition.data), reference((300, 200))) > UPRIGHT_PSNR
