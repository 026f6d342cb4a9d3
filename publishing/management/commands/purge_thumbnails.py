from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandParser

from infra.cli import Progress
from publishing import services as publishing
from publishing.storage_keys import (
    StoredObject,
    check_md5s,
    delete_objects,
    is_thumbnail,
    list_objects,
    md5_of,
)
from uploads.models import Actor

BATCH = 1000
T = TypeVar("T")


class Command(BaseCommand):
    help = (
        "Delete the thumbnails (public keys with '_', JPEG and WebP) and drop them from the "
        "images' renditions, keeping the originals; on-demand generation makes them again. "
        "Safe to interrupt and rerun."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would go, change nothing"
        )
        parser.add_argument(
            "--md5", action="append", default=[], help="only this image (repeatable)"
        )
        parser.add_argument("--progress-every", type=int, default=5000, help="objects per line")
        parser.add_argument("--quiet", action="store_true", help="no progress lines")

    def handle(self, *args: Any, **options: Any) -> None:
        md5s = check_md5s(options["md5"])
        dry_run = options["dry_run"]
        progress = Progress(
            self.stderr, "purge_thumbnails", every=options["progress_every"], quiet=options["quiet"]
        )
        images = 0
        for batch in batched(thumbnails_of(md5s), BATCH):
            keys = [obj.key for obj in batch]
            if dry_run:
                self.stdout.write("\n".join(keys))
                progress.step("would be deleted", len(keys))
                continue
            # Renditions first: an interrupted run never leaves them naming deleted objects.
            images += publishing.forget_thumbnails(
                {md5_of(key) for key in keys}, actor=Actor.PURGE_THUMBNAILS
            )
            delete_objects("public", keys)
            progress.step("deleted", len(keys))
        if md5s and not dry_run:  # renditions naming thumbnails that were already gone
            images += publishing.forget_thumbnails(md5s, actor=Actor.PURGE_THUMBNAILS)
        changed = "" if dry_run else f", renditions of {images} image(s) updated"
        self.stdout.write(
            f"purge_thumbnails{' (dry run)' * dry_run}: {progress.describe()}{changed}"
        )


def thumbnails_of(md5s: list[str]) -> Iterator[StoredObject]:
    """Every thumbnail in public storage, or only those of `md5s` (listed by prefix)."""
    for prefix in [f"{md5}_" for md5 in md5s] or [""]:
        yield from (obj for obj in list_objects("public", prefix=prefix) if is_thumbnail(obj.key))


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
