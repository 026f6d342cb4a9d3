from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from infra.cli import Progress, since
from publishing import services as publishing
from publishing.storage_keys import check_md5s
from uploads.models import Image, State


class Command(BaseCommand):
    help = (
        "Re-render the thumbnails of every published image for the current THUMBNAIL_SIZES and "
        "THUMBNAIL_FORMATS (and the published original, unless --thumbnails-only), through "
        "the publishing code, recording them in the renditions with a STORAGE event. "
        "Safe to interrupt and rerun; --missing-only then skips the images already done."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--md5", action="append", default=[], help="only this image (repeatable)"
        )
        parser.add_argument(
            "--since", type=since, help="only images published since (24h, 7d, ISO)"
        )
        parser.add_argument(
            "--thumbnails-only", action="store_true", help="keep the published original as it is"
        )
        parser.add_argument(
            "--missing-only",
            action="store_true",
            help="only images whose renditions lack a current size or format",
        )
        parser.add_argument("--dry-run", action="store_true", help="list what would be written")
        parser.add_argument("--progress-every", type=int, default=100, help="images per line")
        parser.add_argument("--quiet", action="store_true", help="no progress lines")

    def handle(self, *args: Any, **options: Any) -> None:
        md5s = check_md5s(options["md5"])
        images = Image.objects.filter(state=State.PUBLISHED)
        if md5s:
            images = images.filter(md5__in=md5s)
        if options["since"]:
            images = images.filter(published_at__gte=options["since"])
        progress = Progress(
            self.stderr,
            "regenerate_thumbnails",
            every=options["progress_every"],
            quiet=options["quiet"],
        )
        sizes = f"{settings.THUMBNAIL_SIZES} as {','.join(settings.THUMBNAIL_FORMATS)}"
        pks = images.order_by("published_at", "pk").values_list("pk", flat=True)
        for pk in pks.iterator(chunk_size=500):
            progress.step(self.regenerate(pk, options))
        self.stdout.write(f"regenerate_thumbnails ({sizes}): {progress.describe()}")
        if progress.counts["failed"]:
            raise CommandError(f"{progress.counts['failed']} image(s) failed", returncode=1)

    def regenerate(self, pk: Any, options: dict[str, Any]) -> str:
        image = Image.objects.filter(pk=pk, state=State.PUBLISHED).first()
        if image is None:
            return "taken down"
        wanted = publishing.thumbnail_keys(image.md5)
        if options["missing_only"] and set(wanted) <= set(image.renditions):
            return "up to date"
        if options["dry_run"]:
            self.stdout.write(f"{image.md5} ({image.pk}): {' '.join(wanted)}")
            return "would be regenerated"
        try:
            keys = publishing.regenerate_thumbnails(
                image, include_original=not options["thumbnails_only"]
            )
        except Exception as exc:  # one unreadable original must not stop the run
            self.stderr.write(f"regenerate_thumbnails: {image.md5} ({image.pk}): {exc!r}")
            return "failed"
        return "regenerated" if keys else "taken down"
