"""Accepted oddities, carried through the pipeline (the actors called directly, the test
moderation backend approving): what is published holds only pixels. No trailer of a polyglot,
no script in a comment, no GPS, one upright 8-bit sRGB picture; then the invariant holds."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.storage import storages
from PIL import Image as PILImage

from tests.faults.helpers import assert_integrity, run_pipeline
from tests.hostile.corpus import BY_NAME, CORPUS
from tests.photos import has_gps
from uploads.models import Image, State

pytestmark = pytest.mark.django_db

FORBIDDEN = {
    "no_html": (b"<html", b"<script", b"alert("),
    "no_php": (b"<?php",),
    "no_zip": (b"PK\x03\x04", b"payload.html"),
}


def published_objects(image: Image) -> dict[str, bytes]:
    public = storages["public"]
    objects = {}
    for key in image.renditions:
        with public.open(key, "rb") as stored:
            objects[key] = stored.read()
    return objects


def check_pixels_only(after: str, image: Image, objects: dict[str, bytes]) -> None:
    assert image.md5 in objects, "the public copy of the original is published"
    for key, data in objects.items():
        for needle in FORBIDDEN.get(after, ()):
            assert needle not in data, f"{needle!r} survived into {key}"
        assert not zipfile.is_zipfile(io.BytesIO(data)), key
        with PILImage.open(io.BytesIO(data)) as copy:
            assert copy.format in {"JPEG", "WEBP"}, key
            assert copy.mode in {"RGB", "RGBA"}, (key, copy.mode)
            assert getattr(copy, "n_frames", 1) == 1, key
            assert not copy.getexif(), f"{key} carries EXIF"
            copy.load()
        if data[:2] == b"\xff\xd8":
            assert not has_gps(data)
            assert data.endswith(b"\xff\xd9"), f"{key} has bytes after its end"


@pytest.mark.parametrize("name", [c.name for c in CORPUS if c.after and c.after != "final"])
def test_an_accepted_oddity_is_published_as_pixels_only(send, name):
    case = BY_NAME[name]
    assert send(case).status_code == 202

    image = run_pipeline(Image.objects.get())

    assert image.state == State.PUBLISHED, image.failure_reason
    objects = published_objects(image)
    check_pixels_only(case.after, image, objects)
    with PILImage.open(io.BytesIO(objects[image.md5])) as copy:
        # The row holds the size as shown (upright), which is the published copy's, also for
        # a photo stored sideways with an EXIF orientation.
        assert copy.size == (image.width, image.height)
    assert_integrity()


def test_a_jpeg_with_garbage_scan_data_ends_in_a_final_state_with_a_reason(send):
    assert send(BY_NAME["a JPEG whose scan data is garbage"]).status_code == 202

    image = run_pipeline(Image.objects.get())

    assert image.is_final
    if image.state == State.FAILED:
        assert image.failure_reason
    else:
        assert image.state == State.PUBLISHED
        check_pixels_only("final", image, published_objects(image))
    assert_integrity()
