"""What the in-process fault tests share: uploading through the API, driving the actors as
Dramatiq would (retrying what raises), and the invariant check every fault test ends with."""

from __future__ import annotations

import base64
import io
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError

from uploads.models import EventKind, Image, ImageEvent


def data_url(data: bytes, content_type: str = "image/jpeg") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def deliver(actor: Any, *args: Any, attempts: int = 10) -> list[str]:
    """Run an actor as Dramatiq's Retries middleware would: again after each exception, up to
    `attempts` deliveries. Returns the errors raised along the way."""
    errors = []
    for _ in range(attempts):
        try:
            actor(*args)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        return errors
    return errors


def run_pipeline(image: Image) -> Image:
    """Moderation then publishing, synchronously, each retried as Dramatiq would."""
    from moderation.tasks import moderate_image
    from publishing.tasks import make_thumbnails

    deliver(moderate_image, str(image.pk))
    deliver(make_thumbnails, str(image.pk))
    image.refresh_from_db()
    return image


def transitions(image: Image) -> list[tuple[str, str]]:
    events = ImageEvent.objects.filter(image=image, kind=EventKind.TRANSITION)
    return list(events.order_by("at", "id").values_list("from_state", "to_state"))


def assert_integrity(*options: str) -> None:
    """The invariant holds, checked the way an operator checks it (the command); the failure
    message lists every problem."""
    status, out = integrity_problems(*options)
    assert status == 0, out


def integrity_problems(*args: str) -> tuple[int, str]:
    """Run the command; (exit status, output)."""
    out = io.StringIO()
    try:
        call_command("check_integrity", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()
