from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from uploads.management.operator import add_operator_arguments, find_image, operator
from uploads.services import take_down_content


class Command(BaseCommand):
    help = (
        "Take an image down (by id or md5), as the admin does: with every other image of the "
        "same bytes that is published or on its way; the bytes are blocklisted, PinsterApi "
        "and the uploaders are told."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("image", help="image id or md5")
        parser.add_argument("--reason", required=True, help="recorded and sent to the uploader")
        add_operator_arguments(parser, "takedown")

    def handle(self, *args: Any, **options: Any) -> None:
        reason = options["reason"].strip()
        if not reason:
            raise CommandError("--reason must say why")
        user, actor = operator(options)
        image = find_image(options["image"])
        changed = take_down_content(image=image, by=user, reason=reason, actor=actor)
        if not changed:
            raise CommandError(f"image {image.pk} was not changed: it is {image.state}")
        for each in changed:
            self.stdout.write(
                f"{each.pk} {each.md5} {each.imageable_type} {each.imageable_id}: {each.state}"
            )
        self.stdout.write(f"{len(changed)} image(s) taken down or rejected")
