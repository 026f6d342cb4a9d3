from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from uploads.management.operator import add_operator_arguments, find_image, operator


class Command(BaseCommand):
    help = (
        "Restore a rejected or taken-down image, as the admin does: its bytes are unblocked, "
        "it is published again and PinsterApi is told."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("image", help="image id (or md5)")
        parser.add_argument("--reason", required=True, help="recorded with the decision")
        add_operator_arguments(parser, "restore")

    def handle(self, *args: Any, **options: Any) -> None:
        reason = options["reason"].strip()
        if not reason:
            raise CommandError("--reason must say why")
        user, actor = operator(options)
        image = find_image(options["image"])
        if not image.restore(by=user, reason=reason, actor=actor):
            raise CommandError(f"image {image.pk} was not restored: it is {image.state}")
        self.stdout.write(f"{image.pk} restored: {image.state}, to be published again")
