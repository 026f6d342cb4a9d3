from __future__ import annotations

import io

import pytest
from PIL import GifImagePlugin, Image, WebPImagePlugin

from publishing.thumbnails import Size, render_one, render_thumbnails
from tests.photos import FRAME_SUBJECTS, animated, drawing, heic, photo, psnr, safe_photos, upright


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def frame(index: int) -> Image.Image:
    return upright(200, 150, FRAME_SUBJECTS[index]).resize((100, 75), Image.Resampling.LANCZOS)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_an_animation_is_thumbnailed_from_its_first_frame(fmt):
    rendition = render_one(animated(fmt, frames=3), Size(100, 100))

    out = decoded(rendition.data)
    assert psnr(out, frame(0)) > 22
    assert psnr(out, frame(0)) > psnr(out, frame(1)) + 6


@pytest.mark.parametrize(
    ("fmt", "plugin"),
    [("GIF", GifImagePlugin.GifImageFile), ("WEBP", WebPImagePlugin.WebPImageFile)],
)
def test_it_never_moves_to_a_frame_beyond_the_first(fmt, plugin, monkeypatch):
    seen = []
    original_seek = plugin.seek

    def seek(self, frame):
        seen.append(frame)
        return original_seek(self, frame)

    monkeypatch.setattr(plugin, "seek", seek)

    render_thumbnails(animated(fmt, frames=4), [Size(100, 100)], include_original=True)

    assert [frame for frame in seen if frame > 0] == []


def test_it_reads_heic():
    renditions = render_thumbnails(heic(600, 400), [Size(300, 300)], include_original=True)

    expected = upright(600, 400)
    for rendition in renditions:
        out = decoded(rendition.data)
        assert out.size == (rendition.width, rendition.height)
        assert psnr(out, expected.resize(out.size, Image.Resampling.LANCZOS)) > 28, rendition


def test_it_reads_a_progressive_jpeg():
    rendition = render_one(photo(600, 400, progressive=True), Size(300, 300))

    expected = upright(600, 400).resize((300, 200), Image.Resampling.LANCZOS)
    assert psnr(decoded(rendition.data), expected) > 28


def test_line_art_keeps_its_lines():
    rendition = render_one(drawing((800, 600)), Size(400, 400))

    out = decoded(rendition.data).convert("L")
    expected = (
        decoded(drawing((800, 600))).convert("L").resize((400, 300), Image.Resampling.LANCZOS)
    )
    assert psnr(out, expected) > 28
    assert out.getextrema()[0] < 100  # the lines did not blur away into grey


def test_it_renders_every_safe_photo():
    for kind, data in safe_photos().items():
        renditions = render_thumbnails(data, [Size(400, 400), Size(100, 100)])

        assert [(r.width, r.height) for r in renditions] == [(400, 267)] * 2 + [(100, 67)] * 2, kind
