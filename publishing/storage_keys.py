"""Listing and bulk deletion of stored objects, for the operations commands.

Contract (docs/contract.md §3): originals are keys without ``_`` (``<md5>``), thumbnails are
keys with ``_`` (``<md5>_<W>x<H>``, ``<md5>_<W>x<H>.webp``). On S3 the private storage lives
under its location (``raw/``), possibly in the same bucket as the public objects, so a listing
only ever looks at the objects directly under a storage's own root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.files.storage import storages
from django.core.management.base import CommandError

S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
MD5 = re.compile(r"[0-9a-f]{32}", re.ASCII)


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime | None = None


def is_thumbnail(key: str) -> bool:
    return "_" in key


def md5_of(key: str) -> str:
    return key.split("_", 1)[0].split(".", 1)[0]


def check_md5s(values: Iterable[str]) -> list[str]:
    """The values of a command's --md5 options, lower-cased; CommandError naming any that is
    not an md5 hex digest."""
    md5s = [value.strip().lower() for value in values]
    bad = [md5 for md5 in md5s if not MD5.fullmatch(md5)]
    if bad:
        raise CommandError(f"--md5 takes a 32-digit hex md5, not {', '.join(bad)}")
    return md5s


def bucket_of(alias: str) -> Any | None:
    """The boto3 Bucket behind ``storages[alias]``, or None for local storage."""
    return getattr(storages[alias], "bucket", None)


def s3_prefix(alias: str) -> str:
    location = getattr(storages[alias], "location", "")
    return f"{location}/" if location else ""


def list_objects(alias: str, *, prefix: str = "") -> Iterator[StoredObject]:
    """Objects directly under the root of ``storages[alias]`` whose key starts with ``prefix``,
    in ascending key order (S3's listing order), read page by page."""
    bucket = bucket_of(alias)
    if bucket is not None:
        root = s3_prefix(alias)
        # Delimiter "/": a public root listing never walks into raw/ in a shared bucket.
        for obj in bucket.objects.filter(Prefix=root + prefix, Delimiter="/").page_size(1000):
            yield StoredObject(obj.key[len(root) :], obj.size, obj.last_modified)
        return
    storage = storages[alias]
    try:
        names = storage.listdir("")[1]
    except FileNotFoundError:
        return
    for name in sorted(n for n in names if n.startswith(prefix)):
        try:
            stat = os.stat(storage.path(name))  # one stat for both size and time
        except FileNotFoundError:
            continue  # deleted since the listing
        yield StoredObject(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def delete_objects(alias: str, keys: Iterable[str]) -> None:
    """Delete ``keys`` (missing ones are fine); on S3 up to 1000 per request."""
    bucket = bucket_of(alias)
    if bucket is None:
        storage = storages[alias]
        for key in keys:
            storage.delete(key)
        return
    root = s3_prefix(alias)
    batch = [{"Key": root + key} for key in keys]
    for start in range(0, len(batch), S3_DELETE_BATCH):
        answer = bucket.delete_objects(
            Delete={"Objects": batch[start : start + S3_DELETE_BATCH], "Quiet": True}
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(f"S3 did not delete {len(errors)} object(s): {first}")
