from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from infra.cli import since
from uploads.management.operator import add_operator_arguments, operator
from uploads.models import Image, State


class Command(BaseCommand):
    help = (
        "Put failed images back at the stage that failed (moderation or publishing), with "
        "fresh attempts: all of them, those that failed since a time, or the ones named."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--image", action="append", default=[], metavar="ID")
        parser.add_argument("--since", type=since, help="failed since: 24h, 7d, 30m or ISO 8601")
        parser.add_argument("--dry-run", action="store_true", help="list them, change nothing")
        add_operator_arguments(parser, "retry_failed")

    def handle(self, *args: Any, **options: Any) -> None:
        user, actor = operator(options)
        failed = Image.objects.filter(state=State.FAILED).order_by("state_changed_at")
        if options["image"]:
            failed = failed.filter(pk__in=options["image"])
            missing = set(options["image"]) - {
                str(pk) for pk in failed.values_list("pk", flat=True)
            }
            if missing:
                raise CommandError(f"not failed or not found: {', '.join(sorted(missing))}")
        if options["since"] is not None:
            failed = failed.filter(state_changed_at__gte=options["since"])
        retried = 0
        for image in failed.iterator():
            stage = image.failed_stage()
            if options["dry_run"]:
                self.stdout.write(f"{image.pk}: {stage.name} ({image.failure_reason[:80]})")
                continue
            if image.retry(actor=actor, by=user, reason="retry_failed"):
                retried += 1
                self.stdout.write(f"{image.pk}: back to {image.state} ({stage.name})")
        self.stdout.write(f"{retried} failed image(s) put back at the stage that failed")
