"""The image's JSON body comes from one shared serializer: byte for byte what a serializer made
for each response gives, whatever state the image is in."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.renderers import JSONRenderer

from uploads.models import Image, State
from uploads.serializers import ImageSerializer, image_body

pytestmark = pytest.mark.django_db

IMAGEABLE = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"  # the `api` fixture's token


def make(**fields) -> Image:
    md5 = hashlib.md5(uuid.uuid4().bytes).hexdigest()
    values = {
        "user_id": "8b0d3c1e-5a3f-4f7e-9d1a-2c3b4d5e6f70",
        "imageable_type": "Pin",
        "imageable_id": IMAGEABLE,
        "md5": md5,
        "sha256": md5 * 2,
        "format": "JPEG",
        "content_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "byte_size": 12345,
        **fields,
    }
    return Image.objects.create(**values)


IMAGES = {
    "received": {},
    "named and featured": {
        "name": "Sunset",
        "description": "Over the bay",
        "featured": datetime(2019, 5, 16, 2, 3, 37, 120000, tzinfo=timezone(timedelta(hours=5))),
    },
    "published": {
        "state": State.PUBLISHED,
        "renditions": ["{md5}", "{md5}_400x300", "{md5}_100x100.webp"],
        "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        "dominant_color": "#a1b2c3",
        "frame_count": 3,
        "created_at": datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
    },
    "failed": {"state": State.FAILED, "blurhash": "", "featured": None},
}


@pytest.mark.parametrize("kind", list(IMAGES))
def test_the_shared_serializer_writes_the_same_bytes_as_a_fresh_one(kind):
    fields = dict(IMAGES[kind])
    image = make(**fields)
    if "renditions" in fields:
        image.renditions = [key.format(md5=image.md5) for key in fields["renditions"]]
        image.save(update_fields=["renditions"])
    image.refresh_from_db()

    fresh = JSONRenderer().render(ImageSerializer(image).data)
    assert JSONRenderer().render(image_body(image)) == fresh
    assert JSONRenderer().render(image_body(image)) == fresh  # and again, from the same one


def test_the_status_endpoint_answers_the_serializers_body(api):
    image = make(**IMAGES["named and featured"])

    response = api.get(f"/api/v1/images/{image.pk}")

    assert response.status_code == 200
    assert response.content == JSONRenderer().render(ImageSerializer(image).data)
