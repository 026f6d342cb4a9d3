"""Who an operator's command acts as: a user of the admin (`--by USERNAME`, recorded as the
decider) or a named script (`--actor NAME`, recorded as `system:NAME`)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from uploads.models import Actor, Image


def add_decision_arguments(parser: CommandParser, default_actor: str, reason_help: str) -> None:
    """The image, the required reason, and who decides: a decision's arguments."""
    parser.add_argument("image", help="image id or md5")
    parser.add_argument("--reason", required=True, help=reason_help)
    add_operator_arguments(parser, default_actor)


def decision_of(options: dict[str, Any]) -> tuple[Image, str, Any, str]:
    """(image, reason, user or None, actor) of a decision's arguments; a blank reason refused."""
    reason = options["reason"].strip()
    if not reason:
        raise CommandError("--reason must say why")
    user, actor = operator(options)
    return find_image(options["image"]), reason, user, actor


def add_operator_arguments(parser: CommandParser, default_actor: str) -> None:
    parser.add_argument("--by", metavar="USERNAME", help="the staff user this is done as")
    parser.add_argument(
        "--actor",
        default=default_actor,
        help=f"without --by: the system actor recorded (default: system:{default_actor})",
    )


def operator(options: dict[str, Any]) -> tuple[Any, str]:
    """(user or None, actor string) from --by / --actor."""
    username = options.get("by")
    if not username:
        return None, Actor.system(options["actor"])
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user {username!r}")
    return user, Actor.user(user)


def find_image(reference: str) -> Image:
    """An image by its id, or by md5 (the one shown, else the newest of those bytes)."""
    try:
        return Image.objects.get(pk=uuid.UUID(reference))
    except (ValueError, Image.DoesNotExist):
        pass
    images = Image.objects.filter(md5=reference.lower())
    image = (
        images.showing().order_by("created_at").first() or images.order_by("-created_at").first()
    )
    if image is None:
        raise CommandError(f"no image with id or md5 {reference!r}")
    return image
