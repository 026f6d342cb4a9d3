from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import storages
from django.core.management.base import BaseCommand, CommandError, CommandParser

from infra.cli import Progress
from publishing.storage_keys import StoredObject, bucket_of, is_thumbnail, list_objects, s3_prefix

# Where each source lands in the backup: the old service's layout, the same as the buckets'.
SOURCES = {"default": "raw/", "public": ""}
CHUNK = 1024 * 1024


class Command(BaseCommand):
    help = (
        "Copy every original (keys without '_') to a folder or another bucket: the private "
        "originals to raw/<md5>, with --public also the published copies to <md5>. Objects "
        "already there with the same size are skipped, so an interrupted run can be rerun."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--to-dir", type=Path, help="a local folder (created if missing)")
        target.add_argument("--to-bucket", help="an existing bucket, same credentials")
        parser.add_argument(
            "--to-endpoint",
            help="S3 endpoint of --to-bucket (default AWS_S3_ENDPOINT_URL, with server-side "
            "copies); with it, bodies stream through this process",
        )
        parser.add_argument("--public", action="store_true", help="also the published copies")
        parser.add_argument("--progress-every", type=int, default=500, help="objects per line")
        parser.add_argument("--quiet", action="store_true", help="no progress lines")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["to_endpoint"] and not options["to_bucket"]:
            raise CommandError("--to-endpoint goes with --to-bucket")
        destination = (
            Folder(options["to_dir"])
            if options["to_dir"]
            else Bucket(options["to_bucket"], options["to_endpoint"])
        )
        progress = Progress(
            self.stderr, "backup_originals", every=options["progress_every"], quiet=options["quiet"]
        )
        copied_bytes = 0
        for alias in ("default", "public") if options["public"] else ("default",):
            existing = destination.sizes(SOURCES[alias])
            for obj in list_objects(alias):
                if is_thumbnail(obj.key):
                    continue
                target = SOURCES[alias] + obj.key
                if existing(target) == obj.size:
                    progress.step("skipped")
                    continue
                try:
                    destination.copy(alias, obj, target)
                except (OSError, BotoCoreError, ClientError) as exc:
                    self.stderr.write(f"backup_originals: {alias} {obj.key}: {exc}")
                    progress.step("failed")
                    continue
                copied_bytes += obj.size
                progress.step("copied")
        volume = f", {copied_bytes / 1e6:.1f} MB" if copied_bytes else ""
        self.stdout.write(f"backup_originals to {destination}: {progress.describe()}{volume}")
        if progress.counts["failed"]:
            raise CommandError(f"{progress.counts['failed']} object(s) not copied", returncode=1)


@contextmanager
def open_stored(alias: str, key: str) -> Iterator[tuple[IO[bytes], str | None]]:
    """The object's body as a stream (never read whole) and its Content-Type if known."""
    bucket = bucket_of(alias)
    if bucket is None:
        with storages[alias].open(key, "rb") as stored:
            yield stored, None
        return
    answer = bucket.Object(s3_prefix(alias) + key).get()
    try:
        yield answer["Body"], answer.get("ContentType")
    finally:
        answer["Body"].close()


class Folder:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return str(self.root)

    def sizes(self, prefix: str) -> Callable[[str], int | None]:
        def size(key: str) -> int | None:
            try:
                return (self.root / key).stat().st_size
            except FileNotFoundError:
                return None

        return size

    def copy(self, alias: str, obj: StoredObject, target: str) -> None:
        path = self.root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        with open_stored(alias, obj.key) as (body, _), partial.open("wb") as out:
            shutil.copyfileobj(body, out, CHUNK)
        os.replace(partial, path)  # an interrupted copy never leaves a full-looking file


class Bucket:
    def __init__(self, name: str, endpoint: str | None) -> None:
        source = bucket_of("default")
        if endpoint is None and name in {b.name for b in map(bucket_of, SOURCES) if b}:
            raise CommandError(f"--to-bucket {name} is a source bucket; back up elsewhere")
        # Same endpoint and credentials: S3 copies server-side, no bytes through this process.
        self.server_side = endpoint is None and source is not None
        if self.server_side:
            resource = storages["default"].connection  # type: ignore[attr-defined]
        else:
            import boto3

            timeout = settings.STORAGE_TIMEOUT_SECONDS
            resource = boto3.session.Session().resource(
                "s3",
                endpoint_url=endpoint or settings.AWS_S3_ENDPOINT_URL,
                region_name=settings.AWS_S3_REGION_NAME,
                config=Config(connect_timeout=timeout, read_timeout=timeout * 6),
            )
        self.bucket = resource.Bucket(name)
        self.label = f"s3://{name}" + (f" at {endpoint}" if endpoint else "")
        try:
            self.bucket.meta.client.head_bucket(Bucket=name)
        except (BotoCoreError, ClientError) as exc:
            raise CommandError(f"cannot reach the bucket {self.label}: {exc}") from None

    def __str__(self) -> str:
        return self.label

    def sizes(self, prefix: str) -> Callable[[str], int | None]:
        """Sizes of the objects under ``prefix``, asked in ascending key order: one listing
        walked alongside the source's (same order), instead of a HEAD per object or a dict
        of every key."""
        listing = iter(self.bucket.objects.filter(Prefix=prefix, Delimiter="/").page_size(1000))
        head = next(listing, None)

        def size(key: str) -> int | None:
            nonlocal head
            while head is not None and head.key < key:
                head = next(listing, None)
            return head.size if head is not None and head.key == key else None

        return size

    def copy(self, alias: str, obj: StoredObject, target: str) -> None:
        source = bucket_of(alias)
        if self.server_side and source is not None:
            copy_source = {"Bucket": source.name, "Key": s3_prefix(alias) + obj.key}
            self.bucket.Object(target).copy_from(CopySource=copy_source)
            return
        with open_stored(alias, obj.key) as (body, content_type):
            extra = {"ContentType": content_type} if content_type else None
            self.bucket.upload_fileobj(body, target, ExtraArgs=extra)
