"""The operations commands (backup_originals, purge_thumbnails, regenerate_thumbnails) against
real objects: on the S3-compatible server the test settings start, and on local files."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from PIL import Image as PILImage

from moderation.tasks import moderate_image
from publishing import services as publishing
from publishing.storage_keys import list_objects
from publishing.tasks import make_thumbnails
from tests import services
from tests.photos import photo
from tests.uploads.conftest import data_url, use_local_storage
from uploads.models import EventKind, Image, ImageEvent, State

pytestmark = pytest.mark.django_db


def needs_s3(settings: Any) -> None:
    if not settings.BUCKET_NAME:
        pytest.skip("TEST_STORAGE=local: no S3-compatible server")


@pytest.fixture(params=["s3", "local"])
def backend(request: Any, settings: Any, tmp_path: Path) -> str:
    if request.param == "s3":
        needs_s3(settings)
    else:
        use_local_storage(settings, tmp_path)
    return str(request.param)


@pytest.fixture
def publish(post: Any, backend: str) -> Callable[..., Image]:
    def make(subject: str = "astronaut", width: int = 800, height: int = 600) -> Image:
        body = {"data": {"image": data_url(photo(width, height, subject=subject))}}
        image_id = post(body).json()["id"]
        moderate_image(image_id)
        make_thumbnails(image_id)
        image = Image.objects.get(pk=image_id)
        assert image.state == State.PUBLISHED
        return image

    return make


@pytest.fixture
def two(publish: Callable[..., Image]) -> list[Image]:
    return [publish("astronaut"), publish("coffee", 640, 480)]


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def public_keys() -> list[str]:
    return [obj.key for obj in list_objects("public")]


def read(alias: str, key: str) -> bytes:
    with storages[alias].open(key, "rb") as stored:
        return stored.read()


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def backup_bucket(settings: Any) -> Iterator[str]:
    needs_s3(settings)
    client = services.s3_client(settings.AWS_S3_ENDPOINT_URL)
    name = f"backup-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)


def bucket_objects(settings: Any, name: str) -> dict[str, tuple[bytes, str]]:
    client = services.s3_client(settings.AWS_S3_ENDPOINT_URL)
    found = {}
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        answer = client.get_object(Bucket=name, Key=obj["Key"])
        found[obj["Key"]] = (answer["Body"].read(), answer["ContentType"])
    return found


# --- backup_originals -----------------------------------------------------------------------


def test_backup_copies_the_private_originals_and_no_thumbnail_to_a_folder(two, tmp_path):
    out, _ = run("backup_originals", "--to-dir", str(tmp_path / "backup"), "--quiet")

    copied = files_under(tmp_path / "backup")
    assert copied == {f"raw/{image.md5}": read("default", image.md5) for image in two}
    assert "2 copied" in out


def test_with_public_the_published_copies_are_backed_up_too(two, tmp_path):
    run("backup_originals", "--to-dir", str(tmp_path / "backup"), "--public", "--quiet")

    copied = files_under(tmp_path / "backup")
    expected = {f"raw/{image.md5}": read("default", image.md5) for image in two}
    expected |= {image.md5: read("public", image.md5) for image in two}
    assert copied == expected
    assert len(public_keys()) > 2  # the thumbnails were there and stayed behind


def test_a_rerun_copies_nothing_and_a_damaged_copy_is_copied_again(two, tmp_path):
    target = tmp_path / "backup"
    run("backup_originals", "--to-dir", str(target), "--quiet")
    damaged = target / "raw" / two[0].md5
    damaged.write_bytes(damaged.read_bytes()[:100])

    out, _ = run("backup_originals", "--to-dir", str(target), "--quiet")
    again, _ = run("backup_originals", "--to-dir", str(target), "--quiet")

    assert "1 copied, 1 skipped" in out
    assert "2 skipped" in again and "copied in" not in again
    assert damaged.read_bytes() == read("default", two[0].md5)
    assert not list(target.rglob("*.part"))


@pytest.mark.parametrize("streamed", [False, True], ids=["same-endpoint", "to-endpoint"])
def test_backup_to_another_bucket_copies_originals_with_their_type_once(
    two, backup_bucket, settings, backend, streamed
):
    args = ["--to-bucket", backup_bucket, "--public", "--quiet"]
    if streamed:
        args += ["--to-endpoint", settings.AWS_S3_ENDPOINT_URL]

    out, _ = run("backup_originals", *args)
    rerun, _ = run("backup_originals", *args)

    found = bucket_objects(settings, backup_bucket)
    expected = {f"raw/{image.md5}": read("default", image.md5) for image in two}
    expected |= {image.md5: read("public", image.md5) for image in two}
    assert {key: body for key, (body, _) in found.items()} == expected
    if backend == "s3":  # local files carry no type; S3 objects keep theirs
        assert {ctype for _, ctype in found.values()} == {"image/jpeg"}
    assert "4 copied" in out
    assert "4 skipped" in rerun and "copied" not in rerun


def test_backup_shows_progress_on_stderr_unless_quiet(two, tmp_path):
    _, err = run("backup_originals", "--to-dir", str(tmp_path / "a"), "--progress-every", "1")
    _, quiet = run("backup_originals", "--to-dir", str(tmp_path / "b"), "--quiet")

    lines = err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "backup_originals: 1 done",
        "backup_originals: 2 done",
    ]
    assert quiet == ""


def test_backup_refuses_a_source_bucket_as_its_destination(settings):
    needs_s3(settings)
    with pytest.raises(CommandError, match="source bucket"):
        run("backup_originals", "--to-bucket", settings.BUCKET_NAME)


def test_backup_to_a_bucket_that_does_not_exist_is_a_clear_error(settings):
    needs_s3(settings)
    with pytest.raises(CommandError, match="cannot reach the bucket"):
        run("backup_originals", "--to-bucket", f"missing-{uuid.uuid4().hex[:8]}")


# --- purge_thumbnails -----------------------------------------------------------------------


def thumbnail_keys_of(images: list[Image]) -> list[str]:
    return sorted(key for image in images for key in image.renditions if "_" in key)


def test_a_dry_run_lists_every_thumbnail_and_changes_nothing(two):
    before = public_keys()
    events = ImageEvent.objects.count()

    out, _ = run("purge_thumbnails", "--dry-run", "--quiet")

    listed = out.splitlines()[:-1]
    assert sorted(listed) == thumbnail_keys_of(two)
    assert any(key.endswith(".webp") for key in listed)
    assert public_keys() == before
    assert [Image.objects.get(pk=i.pk).renditions for i in two] == [i.renditions for i in two]
    assert ImageEvent.objects.count() == events


def test_purge_deletes_every_thumbnail_keeps_the_originals_and_updates_renditions(two):
    originals = {image.md5: read("public", image.md5) for image in two}
    thumbnails = {image.pk: thumbnail_keys_of([image]) for image in two}

    out, _ = run("purge_thumbnails", "--quiet")
    rerun, _ = run("purge_thumbnails", "--quiet")

    assert public_keys() == sorted(originals)
    assert {md5: read("public", md5) for md5 in originals} == originals
    assert all(storages["default"].exists(image.md5) for image in two)
    for image in two:
        image.refresh_from_db()
        assert image.renditions == [image.md5]
        event = image.events.get(kind=EventKind.STORAGE, actor="system:purge_thumbnails")
        assert sorted(event.details["removed"]) == thumbnails[image.pk]
    assert f"{len(thumbnail_keys_of(two))} deleted" in out
    assert "nothing" in rerun and "renditions of 0 image(s)" in rerun


def test_after_a_purge_the_endpoint_makes_a_thumbnail_again(two, client):
    run("purge_thumbnails", "--quiet")
    image = two[0]

    response = client.get(f"/{image.md5}_400x400")

    assert response.status_code in (200, 302)
    assert storages["public"].exists(f"{image.md5}_400x400")
    assert Image.objects.get(pk=image.pk).renditions == [image.md5, f"{image.md5}_400x400"]


def test_purge_with_an_md5_touches_only_that_image(two):
    kept = thumbnail_keys_of([two[1]])

    run("purge_thumbnails", "--md5", two[0].md5, "--quiet")

    assert public_keys() == sorted([two[0].md5, two[1].md5, *kept])
    assert Image.objects.get(pk=two[0].pk).renditions == [two[0].md5]
    assert Image.objects.get(pk=two[1].pk).renditions == two[1].renditions


def test_purge_refuses_something_that_is_not_an_md5(backend):
    with pytest.raises(CommandError, match="32-digit hex md5"):
        run("purge_thumbnails", "--md5", "raw/../x")


# --- regenerate_thumbnails ------------------------------------------------------------------


def test_after_a_size_change_every_published_image_gets_the_new_sizes(two, settings):
    settings.THUMBNAIL_SIZES = "100x100,300x300"
    settings.THUMBNAIL_FORMATS = ["JPEG"]
    before = {image.pk: image.renditions for image in two}

    out, _ = run("regenerate_thumbnails", "--quiet")

    for image in two:
        image.refresh_from_db()
        new = [f"{image.md5}_100x100", f"{image.md5}_300x300"]
        assert image.renditions == before[image.pk] + [new[1]]
        with PILImage.open(io.BytesIO(read("public", new[1]))) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == 300
        assert not storages["public"].exists(f"{image.md5}_300x300.webp")
        event = image.events.get(kind=EventKind.STORAGE, actor="system:regenerate_thumbnails")
        assert event.details["written"] == [image.md5, *new]
    assert "2 regenerated" in out


def test_a_rerun_rewrites_the_same_keys_and_missing_only_skips_what_is_done(two, settings):
    settings.THUMBNAIL_SIZES = "100x100,300x300"
    run("regenerate_thumbnails", "--quiet")
    keys, renditions = public_keys(), [Image.objects.get(pk=i.pk).renditions for i in two]

    rerun, _ = run("regenerate_thumbnails", "--quiet")
    resumed, _ = run("regenerate_thumbnails", "--missing-only", "--quiet")

    assert public_keys() == keys
    assert [Image.objects.get(pk=i.pk).renditions for i in two] == renditions
    assert "2 regenerated" in rerun
    assert "2 up to date" in resumed and "regenerated" not in resumed


def test_a_dry_run_lists_the_images_and_writes_nothing(two, settings):
    settings.THUMBNAIL_SIZES = "300x300"
    keys = public_keys()

    out, _ = run("regenerate_thumbnails", "--dry-run", "--quiet")

    assert public_keys() == keys
    assert all(f"{image.md5}_300x300.webp" in out for image in two)
    assert not ImageEvent.objects.filter(actor="system:regenerate_thumbnails").exists()
    assert "2 would be regenerated" in out


def test_thumbnails_only_leaves_the_published_original_alone(two):
    image = two[0]
    storages["public"].delete(image.md5)

    run("regenerate_thumbnails", "--md5", image.md5, "--thumbnails-only", "--quiet")
    assert not storages["public"].exists(image.md5)
    assert storages["public"].exists(f"{image.md5}_400x400.webp")

    run("regenerate_thumbnails", "--md5", image.md5, "--quiet")
    assert storages["public"].exists(image.md5)


def test_only_published_images_selected_by_md5_and_since_are_regenerated(two, moderator, settings):
    settings.THUMBNAIL_SIZES = "300x300"
    taken_down, other = two
    assert taken_down.take_down(by=moderator, reason="test")
    assert publishing.release_public_objects(taken_down.md5)[1] is None

    run("regenerate_thumbnails", "--since", (timezone.now() + timedelta(hours=1)).isoformat())
    assert not any(key.endswith("_300x300") for key in public_keys())

    run("regenerate_thumbnails", "--md5", taken_down.md5, "--md5", other.md5, "--quiet")
    assert [key for key in public_keys() if key.endswith("_300x300")] == [f"{other.md5}_300x300"]


def test_an_image_taken_down_while_it_renders_leaves_nothing_public(
    two, moderator, settings, monkeypatch
):
    settings.THUMBNAIL_SIZES = "300x300"
    image = two[0]
    publish_image = publishing.publish_image

    def taken_down_meanwhile(target: Image, **options: Any) -> list[str]:
        keys = publish_image(target, **options)
        assert Image.objects.get(pk=target.pk).take_down(by=moderator, reason="meanwhile")
        return keys

    monkeypatch.setattr(publishing, "publish_image", taken_down_meanwhile)

    out, _ = run("regenerate_thumbnails", "--md5", image.md5, "--quiet")

    assert not storages["public"].exists(f"{image.md5}_300x300")
    assert not storages["public"].exists(image.md5)
    assert "1 taken down" in out


@pytest.mark.slow
def test_purge_pages_through_more_than_a_thousand_thumbnails_on_s3(settings):
    needs_s3(settings)
    client = services.s3_client(settings.AWS_S3_ENDPOINT_URL)
    md5 = "0" * 32
    keys = [md5, *(f"{md5}_{side}x{side}" for side in range(1, 1006))]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=settings.BUCKET_NAME, Key=key), keys))

    out, _ = run("purge_thumbnails", "--quiet")

    assert public_keys() == [md5]
    assert "1005 deleted" in out


# --- renditions, as on-demand generation and regenerate_thumbnails record them ----------------


def test_two_writers_adding_renditions_from_the_same_read_keep_both_keys(two, moderator):
    first, second = Image.objects.get(pk=two[0].pk), Image.objects.get(pk=two[0].pk)
    before = list(first.renditions)

    assert publishing.add_renditions(first, ["a_1x1"])
    assert publishing.add_renditions(second, ["b_1x1"])  # its read is stale now

    assert Image.objects.get(pk=two[0].pk).renditions == [*before, "a_1x1", "b_1x1"]
    assert second.take_down(by=moderator, reason="test")
    assert not publishing.add_renditions(second, ["c_1x1"])
    assert "c_1x1" not in Image.objects.get(pk=two[0].pk).renditions
