from __future__ import annotations

import io

import pytest
from PIL import Image

from publishing.thumbnails import Size, parse_sizes, render_one, render_thumbnails, thumbnail_key
from tests.photos import photo

MD5 = "9e107d9d372bb6826bd81d3542a419d6"


def test_it_parses_the_sizes_of_the_issue():
    sizes = parse_sizes("100x100,400x400,800x800,1600x1600,400xauto")

    assert sizes == [
        Size(100, 100),
        Size(400, 400),
        Size(800, 800),
        Size(1600, 1600),
        Size(400, None),
    ]
    assert [size.suffix for size in sizes][-2:] == ["1600x1600", "400xauto"]


def test_it_accepts_auto_on_either_side_and_spaces_around_entries():
    assert parse_sizes(" autox300 , 1x5000 ") == [Size(None, 300), Size(1, 5000)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no thumbnail sizes"),
        ("400", "expected WIDTHxHEIGHT"),
        ("400x", "expected WIDTHxHEIGHT"),
        ("400x400x400", "expected WIDTHxHEIGHT"),
        ("400X400", "expected WIDTHxHEIGHT"),
        ("-4x400", "expected WIDTHxHEIGHT"),
        ("4.5x400", "expected WIDTHxHEIGHT"),
        ("100x100,,200x200", "expected WIDTHxHEIGHT"),
        ("0x400", "between 1 and 5000"),
        ("400x5001", "between 1 and 5000"),
        ("autoxauto", "not 'auto'"),
        ("100x100,100x100", "duplicate"),
    ],
)
def test_it_rejects_bad_sizes_with_a_message_naming_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_sizes(text)


def test_a_size_cannot_be_built_outside_the_limits():
    with pytest.raises(ValueError, match="between 1 and 5000"):
        Size(5001, 10)
    with pytest.raises(ValueError, match="not 'auto'"):
        Size(None, None)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (Size(400, 400), (400, 267)),
        (Size(100, 100), (100, 67)),
        (Size(400, None), (400, 267)),
        (Size(None, 300), (450, 300)),
        (Size(300, 100), (150, 100)),
        (Size(1600, 1600), (1200, 800)),
        (Size(5000, None), (1200, 800)),
    ],
)
def test_it_fits_inside_the_box_keeping_the_aspect_and_never_upscales(size, expected):
    (rendition,) = render_thumbnails(photo(1200, 800), [size], formats=("JPEG",))

    with Image.open(io.BytesIO(rendition.data)) as img:
        assert img.size == expected == (rendition.width, rendition.height)
    assert rendition.name == size.suffix


def test_it_renders_every_size_in_every_format_in_order():
    sizes = parse_sizes("100x100,400xauto")

    renditions = render_thumbnails(photo(1200, 800), sizes)

    assert [(r.name, r.format, r.content_type) for r in renditions] == [
        ("100x100", "JPEG", "image/jpeg"),
        ("100x100", "WEBP", "image/webp"),
        ("400xauto", "JPEG", "image/jpeg"),
        ("400xauto", "WEBP", "image/webp"),
    ]
    for rendition in renditions:
        with Image.open(io.BytesIO(rendition.data)) as img:
            assert img.format == rendition.format


def test_it_renders_one_size_on_demand():
    rendition = render_one(photo(1200, 800), Size(None, 200), "WEBP")

    assert (rendition.name, rendition.format, rendition.width, rendition.height) == (
        "autox200",
        "WEBP",
        300,
        200,
    )


def test_it_refuses_formats_other_than_jpeg_and_webp():
    with pytest.raises(ValueError, match="JPEG and/or WEBP"):
        render_thumbnails(photo(120, 80), [Size(50, 50)], formats=("PNG",))


def test_thumbnail_keys_follow_the_contract():
    assert thumbnail_key(MD5, Size(400, 400), "JPEG") == f"{MD5}_400x400"
    assert thumbnail_key(MD5, Size(400, None), "JPEG") == f"{MD5}_400xauto"
    assert thumbnail_key(MD5, Size(None, 300), "webp") == f"{MD5}_autox300.webp"


def test_every_thumbnail_key_has_an_underscore_that_an_md5_never_has():
    sizes = parse_sizes("1x1,autox9")
    keys = [thumbnail_key(MD5, size, fmt) for size in sizes for fmt in ("JPEG", "WEBP")]

    assert "_" not in MD5
    assert all(key.startswith(MD5 + "_") for key in keys)


def test_thumbnail_keys_exist_only_for_jpeg_and_webp():
    with pytest.raises(ValueError, match="JPEG or WEBP"):
        thumbnail_key(MD5, Size(1, 1), "PNG")
