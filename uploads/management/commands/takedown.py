from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from uploads.management.operator import add_decision_arguments, decision_of
from uploads.services import take_down_content


class Command(BaseCommand):
    help = (
        "Take an image down (by id or md5), as the admin does: with every other image of the "
        "same bytes that is published or on its way; the bytes are blocklisted, PinsterApi "
        "and the uploaders are told."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_decision_arguments(parser, "takedown", "recorded and sent to the uploader")

    def handle(self, *args: Any, **options: Any) -> None:
        image, reason, user, actor = decision_of(options)
        changed = take_down_content(image=image, by=user, reason=reason, actor=actor)
        if not changed:
            raise CommandError(f"image {image.pk} was not changed: it is {image.state}")
        for each in changed:
            self.stdout.write(
                f"{each.pk} {each.md5} {each.imageable_type} {each.imageable_id}: {each.state}"
            )
        self.stdout.write(f"{len(changed)} image(s) taken down or rejected")
