"""infra.storage.S3Storage on the S3-compatible server: one PutObject per write with the
headers and ACL django-storages would set, one GetObject per read."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

from infra.storage import S3Storage, read_bytes
from publishing import services as publishing
from publishing import thumbnails
from tests.photos import photo


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The S3 client; s3transfer's managed transfers (django-storages' way) fail the test."""
    if not settings.BUCKET_NAME:
        pytest.skip("TEST_STORAGE=local: no S3-compatible server")
    from s3transfer.manager import TransferManager

    def managed(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a managed transfer, not one PutObject/GetObject")

    monkeypatch.setattr(TransferManager, "upload", managed)
    monkeypatch.setattr(TransferManager, "download", managed)
    return storages["public"].connection.meta.client


def test_a_thumbnail_is_stored_with_its_type_cache_header_and_public_acl(s3):
    (rendition,) = thumbnails.render_thumbnails(photo(800, 600), [thumbnails.Size(400, 400)])[:1]

    publishing.save_public("0" * 32 + "_400x400", rendition)

    public = storages["public"]
    assert isinstance(public, S3Storage)
    head = s3.head_object(Bucket=public.bucket_name, Key="0" * 32 + "_400x400")
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == settings.PUBLIC_CACHE_CONTROL
    assert head["ContentLength"] == len(rendition.data)
    grants = s3.get_object_acl(Bucket=public.bucket_name, Key="0" * 32 + "_400x400")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") for g in grants)
    assert read_bytes(public, "0" * 32 + "_400x400") == rendition.data
    public.delete("0" * 32 + "_400x400")


def test_an_original_is_private_under_its_location_and_reads_back_whole(s3):
    private = storages["default"]
    data = photo(1200, 800)
    content = ContentFile(data)
    content.content_type = "image/jpeg"  # type: ignore[attr-defined]

    assert private.save("1" * 32, content) == "1" * 32

    head = s3.head_object(Bucket=private.bucket_name, Key="raw/" + "1" * 32)
    assert head["ContentType"] == "image/jpeg"
    grants = s3.get_object_acl(Bucket=private.bucket_name, Key="raw/" + "1" * 32)["Grants"]
    assert not any("AllUsers" in g["Grantee"].get("URI", "") for g in grants)
    assert read_bytes(private, "1" * 32) == data
    private.delete("1" * 32)


def test_reading_a_missing_object_is_file_not_found(s3):
    with pytest.raises(FileNotFoundError):
        read_bytes(storages["default"], "2" * 32)


def test_a_text_write_is_stored_as_utf8(s3):
    public = storages["public"]
    public.save("notes_1x1.txt", ContentFile("héllo"))
    assert read_bytes(public, "notes_1x1.txt") == "héllo".encode()
    public.delete("notes_1x1.txt")


def test_read_bytes_falls_back_to_open_for_other_storages(tmp_path):
    local = FileSystemStorage(location=str(tmp_path))
    local.save("x", ContentFile(b"bytes"))
    assert read_bytes(local, "x") == b"bytes"


def test_every_thread_shares_the_process_s_clients_and_public_urls_are_unsigned(s3):
    public, private = storages["public"], storages["default"]

    def clients(n: int) -> tuple[int, int, str]:
        url = public.url(f"{n:032x}_400x400")
        return id(public.connection), id(public.unsigned_connection), url

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(clients, range(8)))

    assert len({signed for signed, _, _ in seen}) == 1
    assert len({unsigned for _, unsigned, _ in seen}) == 1
    assert private.unsigned_connection is public.unsigned_connection  # same endpoint and keys
    for _, _, url in seen:
        assert url.startswith(f"{settings.AWS_S3_ENDPOINT_URL}/{settings.BUCKET_NAME}/")
        assert "Signature" not in url and "?" not in url
