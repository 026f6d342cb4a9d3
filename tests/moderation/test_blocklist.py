"""The blocklist: rejected images found again by their bytes or their look, and only them."""

from __future__ import annotations

import io
import random

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import storages
from PIL import Image as PILImage

from moderation import blocking, blocklist
from moderation.models import BlockedImage, ModerationResult, to_signed64
from moderation.services import moderate
from tests.moderation.corpus import safe_corpus
from tests.photos import flat, photo
from uploads.models import State

pytestmark = pytest.mark.django_db

SUBJECTS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
MAX_DISTANCE = django_settings.BLOCKLIST_MAX_DISTANCE


def rejected(subject: str = "astronaut") -> bytes:
    return photo(1200, 800, subject=subject)


def encode(img: PILImage.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def transformed(data: bytes, how: str) -> bytes:
    with PILImage.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
    w, h = img.size
    dx, dy = w // 20, h // 20
    return {
        "recompressed": lambda: encode(img, quality=55),
        "half_size": lambda: encode(img.resize((w // 2, h // 2), PILImage.LANCZOS), quality=85),
        "cropped_5_percent": lambda: encode(img.crop((dx // 2, dy // 2, w - dx // 2, h - dy // 2))),
        "cropped_5_percent_off_the_top": lambda: encode(img.crop((0, dy, w, h))),
        "cropped_5_percent_off_a_corner": lambda: encode(img.crop((dx, dy, w, h))),
        "png": lambda: encode(img, "PNG"),
        "webp": lambda: encode(img, "WEBP", quality=75),
    }[how]()


TRANSFORMATIONS = (
    "recompressed",
    "half_size",
    "cropped_5_percent",
    "cropped_5_percent_off_the_top",
    "cropped_5_percent_off_a_corner",
    "png",
    "webp",
)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("how", TRANSFORMATIONS)
def test_a_transformed_copy_of_a_rejected_photo_is_caught(how, subject):
    entry = blocking.block_bytes(rejected(subject), reason="explicit")
    copy = transformed(rejected(subject), how)

    match = blocklist.lookup("0" * 64, blocklist.hashes_of_bytes(copy), MAX_DISTANCE)

    assert match is not None
    assert (match.entry, match.by) == (entry, "phash")
    assert match.distance <= 4  # a margin below the default BLOCKLIST_MAX_DISTANCE of 6


def test_unrelated_images_are_not_caught():
    for subject in SUBJECTS:
        blocking.block_bytes(rejected(subject))
    # The corpus holds the blocked photos' sources (and a stereo twin of one): not unrelated.
    same_scene = {"photo", "astronaut", "chelsea", "coffee", "rocket", "motorcycle_left"}
    same_scene.add("motorcycle_right")
    unrelated = {
        name: data for name, data in safe_corpus().items() if not set(name.split("/")) & same_scene
    }
    assert len(unrelated) > 300

    caught = [
        name
        for name, data in unrelated.items()
        if blocklist.lookup("0" * 64, blocklist.hashes_of_bytes(data), MAX_DISTANCE) is not None
    ]

    assert caught == []


def test_an_upload_matching_the_blocklist_goes_to_review_naming_the_blocked_image(make_image):
    source = make_image(rejected("chelsea"), state=State.REJECTED)
    entry = blocking.block_image(source)
    image = make_image(transformed(rejected("chelsea"), "half_size"))

    decision = moderate(image)

    assert decision.outcome == State.IN_REVIEW
    assert decision.reason.startswith(f"blocklisted: 0 bits from blocked image #{entry.pk}")
    assert str(source.pk) in decision.reason
    assert decision.details["blocklist"] == {
        "blocked_image_id": entry.pk,
        "source_image_id": str(source.pk),
        "by": "phash",
        "distance": 0,
    }
    result = ModerationResult.objects.get(image=image)
    assert (result.blocked_image, result.blocklist_distance) == (entry, 0)


def test_the_same_bytes_for_another_pin_are_rejected_when_the_setting_says_so(make_image, settings):
    settings.BLOCKLIST_ACTION = "reject"
    source = make_image(rejected("coffee"), state=State.REJECTED, imageable_id="pin-1")
    blocking.block_image(source)
    again = make_image(rejected("coffee"), imageable_id="pin-2")

    decision = moderate(again)

    assert decision.outcome == State.REJECTED
    assert decision.details["blocklist"]["by"] == "sha256"
    assert "the same bytes as blocked image" in decision.reason


def test_a_blocklisted_image_the_policy_would_reject_anyway_keeps_both_reasons(make_image):
    from moderation.backends import TestBackend

    data = rejected("rocket")
    blocking.block_bytes(data)
    TestBackend.answer(data, ("Explicit Nudity", 99.9))

    decision = moderate(make_image(data))

    assert decision.outcome == State.REJECTED
    assert decision.reason.startswith("Explicit Nudity 99.9% >= reject threshold 99; blocklisted")


def test_a_flat_colour_is_blocked_by_its_bytes_only():
    entry = blocking.block_bytes(flat("red", (256, 256)))

    assert entry.phash is None
    assert blocklist.hashes_of_bytes(flat("blue", (256, 256))) == []
    assert blocklist.lookup(entry.sha256, [], MAX_DISTANCE).entry == entry


def test_an_entry_added_after_the_index_loaded_is_found_at_once():
    blocklist.lookup(
        "0" * 64, blocklist.hashes_of_bytes(rejected("chelsea")), MAX_DISTANCE
    )  # loads
    entry = blocking.block_bytes(rejected("astronaut"))

    match = blocklist.lookup(
        "0" * 64, blocklist.hashes_of_bytes(rejected("astronaut")), MAX_DISTANCE
    )

    assert match.entry == entry


def test_an_entry_committed_after_a_later_one_is_still_found():
    """Two rejections commit out of order: the index must not skip the id it saw missing."""
    blocking.block_bytes(rejected("astronaut"))
    blocklist.lookup("0" * 64, [1], MAX_DISTANCE)  # loads the index
    first = blocking.block_bytes(rejected("coffee"))
    blocking.block_bytes(rejected("rocket"))
    values = BlockedImage.objects.filter(pk=first.pk).values().get()
    BlockedImage.objects.filter(pk=first.pk).delete()  # as if it had not committed yet
    blocklist.lookup("0" * 64, [1], MAX_DISTANCE)
    assert blocklist.index._missing.keys() == {first.pk}

    BlockedImage.objects.create(**values)  # ... and now it has
    match = blocklist.lookup("0" * 64, blocklist.hashes_of_bytes(rejected("coffee")), MAX_DISTANCE)

    assert match.entry.pk == first.pk
    assert blocklist.index._missing == {}


def test_a_removed_entry_stops_matching_before_the_index_reloads():
    hashes = blocklist.hashes_of_bytes(rejected("motorcycle"))
    entry = blocking.block_bytes(rejected("motorcycle"))
    assert blocklist.lookup("0" * 64, hashes, MAX_DISTANCE).entry == entry

    entry.delete()

    assert blocklist.lookup("0" * 64, hashes, MAX_DISTANCE) is None
    assert len(blocklist.index) == 10  # still loaded: confirmed against the table instead


def test_adding_an_image_twice_keeps_one_entry(make_image):
    image = make_image(rejected("astronaut"), state=State.REJECTED, decision_reason="nudity")

    first = blocking.block_image(image)
    second = blocking.block_image(image)

    assert first == second
    assert BlockedImage.objects.count() == 1
    assert (first.source_image, first.reason) == (image, "nudity")
    assert len(first.crop_hashes) == 9
    assert str(first) == f"Blocked {image.sha256[:12]}… from image {image.pk}"
    assert first.phash_hex == f"{blocklist.hashes_of_bytes(rejected('astronaut'))[0]:016x}"


def test_a_rejection_right_after_moderation_reuses_its_hashes_without_reading_storage(
    make_image,
):
    image = make_image(rejected("rocket"))
    moderate(image)
    storages["default"].delete(image.md5)

    entry = blocking.block_image(image)

    assert entry.phash is not None


def test_an_unreadable_original_raises_so_the_rejection_rolls_back(make_image):
    image = make_image(rejected("coffee"), state=State.REJECTED)
    storages["default"].delete(image.md5)

    with pytest.raises(FileNotFoundError):
        blocking.block_image(image)


def test_the_numpy_index_finds_exactly_what_a_plain_scan_finds():
    rng = random.Random(5)
    base = [rng.getrandbits(64) for _ in range(300)]
    rows = [(i + 1, to_signed64(h), []) for i, h in enumerate(base)]
    index = blocklist.HashIndex()
    index.arrays = blocklist._arrays(rows)
    for _ in range(50):
        probe = base[rng.randrange(300)] ^ sum(1 << rng.randrange(64) for _ in range(4))
        expected = sorted(
            (blocklist.hamming(h, probe), i + 1)
            for i, h in enumerate(base)
            if blocklist.hamming(h, probe) <= 12
        )[:5]

        found = index.nearest(probe, 12)

        assert [(c.distance, c.entry_id) for c in found] == expected
