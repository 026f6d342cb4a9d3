from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from uploads.management.operator import add_decision_arguments, decision_of


class Command(BaseCommand):
    help = (
        "Restore a rejected or taken-down image, as the admin does: its bytes are unblocked, "
        "it is published again and PinsterApi is told."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_decision_arguments(parser, "restore", "recorded with the decision")

    def handle(self, *args: Any, **options: Any) -> None:
        image, reason, user, actor = decision_of(options)
        if not image.restore(by=user, reason=reason, actor=actor):
            raise CommandError(f"image {image.pk} was not restored: it is {image.state}")
        self.stdout.write(f"{image.pk} restored: {image.state}, to be published again")
