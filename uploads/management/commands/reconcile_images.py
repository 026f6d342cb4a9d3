from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from uploads.pipeline import reconcile_images


class Command(BaseCommand):
    help = "Re-enqueue images whose processing has not moved for STALE_AFTER_SECONDS."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--all", action="store_true", help="every unfinished image, now")
        parser.add_argument("--limit", type=int, default=10_000)

    def handle(self, *args: Any, **options: Any) -> None:
        quiet_for = 0 if options["all"] else None
        count = reconcile_images(limit=options["limit"], quiet_for=quiet_for)
        self.stdout.write(f"re-enqueued {count} image(s)")
