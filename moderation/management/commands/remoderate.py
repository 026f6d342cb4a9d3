"""Re-run automatic moderation over chosen images, e.g. after the policy changed.

Reports what would change; with --apply (and --user, the moderator answerable for it) acts
where that is safe: only images still waiting for a decision (in review) are approved or
rejected. Anything else that would now be decided differently is reported for a human: a
rejected image is never re-approved, a published one never taken down, by this command.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from moderation.backends import load_backend
from moderation.models import Trigger
from moderation.policy import Decision
from moderation.services import moderate
from uploads.models import Image, ImageQuerySet, State

IN_PIPELINE = {State.RECEIVED, State.MODERATING}


class Command(BaseCommand):
    help = "Re-run automatic moderation over a set of images; report, or --apply, the changes."

    def add_arguments(self, parser: CommandParser) -> None:
        states = [s.value for s in State]
        parser.add_argument("--state", action="append", choices=states, help="repeatable")
        parser.add_argument("--since", help="uploaded on or after (YYYY-MM-DD or ISO datetime)")
        parser.add_argument("--ids", help="comma-separated image ids")
        parser.add_argument("--backend", help="dotted path of the backend to run instead")
        parser.add_argument("--moderated-by", help="only images this backend (path) has judged")
        parser.add_argument("--limit", type=int, default=1000)
        parser.add_argument("--apply", action="store_true", help="approve/reject images in review")
        parser.add_argument("--user", help="username of the moderator the decisions are made as")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options) if options["apply"] else None
        try:
            backend = load_backend(options["backend"]) if options["backend"] else None
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        counts: Counter[str] = Counter()
        for image in self._images(options):
            action = self._remoderate(image, backend, user)
            counts[action.split(":")[0]] += 1
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "no images"
        self.stdout.write(("applied: " if user else "dry run: ") + summary)

    def _user(self, options: dict[str, Any]) -> Any:
        if not options["user"]:
            raise CommandError("--apply needs --user: the moderator the decisions are made as")
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None or not user.has_perm("uploads.moderate_image"):
            raise CommandError(f"{options['user']!r} is not an active user who may moderate")
        return user

    def _images(self, options: dict[str, Any]) -> ImageQuerySet:
        images = Image.objects.order_by("created_at")
        if options["ids"]:
            images = images.filter(pk__in=[i.strip() for i in options["ids"].split(",") if i])
        states = options["state"] or ([] if options["ids"] else [State.IN_REVIEW])
        if states:
            images = images.filter(state__in=states)
        if options["since"]:
            images = images.filter(created_at__gte=_moment(options["since"]))
        if options["moderated_by"]:
            images = images.filter(moderation_results__backend=options["moderated_by"]).distinct()
        return images[: options["limit"]]

    def _remoderate(self, image: Image, backend: Any, user: Any) -> str:
        if image.state in IN_PIPELINE:
            return self._report(image, None, "skipped: being moderated by the pipeline")
        try:
            decision = moderate(
                image, backend=backend, record=user is not None, trigger=Trigger.REMODERATE
            )
        except Exception as exc:  # one image's outage must not stop the run
            return self._report(image, None, f"error: {type(exc).__name__}: {exc}")
        return self._report(image, decision, self._act(image, decision, user))

    def _act(self, image: Image, decision: Decision, user: Any) -> str:
        new = decision.outcome
        if new == image.state or (new == State.APPROVED and image.state in _APPROVED_ALREADY):
            return "unchanged"
        if image.state != State.IN_REVIEW:
            if image.state == State.REJECTED:
                return f"needs a moderator: rejected, the policy now says {new}; not re-approved"
            return f"needs a moderator: {image.state}, the policy now says {new}"
        if user is None:
            return f"would {'approve' if new == State.APPROVED else 'reject'}"
        reason = f"remoderate: {decision.reason}"
        if new == State.APPROVED:
            done = image.approve(by=user, reason=reason)
        else:
            done = image.reject(by=user, reason=reason)
        return ("approved" if new == State.APPROVED else "rejected") if done else "raced: skipped"

    def _report(self, image: Image, decision: Decision | None, action: str) -> str:
        outcome = f" -> {decision.outcome}" if decision else ""
        why = f"  ({decision.reason})" if decision and action != "unchanged" else ""
        self.stdout.write(f"{image.pk}  {image.state}{outcome}  {action}{why}")
        return action


_APPROVED_ALREADY = {State.APPROVED, State.PUBLISHING, State.PUBLISHED}


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--since {text!r} is not a date or an ISO datetime")
        moment = datetime.combine(day, time.min)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
