"""The team's dashboard: the queue, who holds what, decisions per moderator per day, the median
time from entering review to a decision, and the share of decisions overturned by a restore
(a later transition out of the rejected or taken-down state)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from moderation.console import workspace
from moderation.console.views import short_duration
from moderation.models import ReviewClaim
from uploads.models import EventKind, ImageEvent, State

DAYS = 7
OVERTURNABLE = (State.REJECTED, State.TAKEN_DOWN)
MAX_TIMED = 20_000  # decisions whose waiting time is read, newest first


def decisions(since: Any) -> Any:
    """Transitions a person made out of review, or out of a published state (takedowns)."""
    return ImageEvent.objects.filter(
        kind=EventKind.TRANSITION, at__gte=since, user__isnull=False
    ).filter(Q(from_state=State.IN_REVIEW) | Q(to_state=State.TAKEN_DOWN))


def per_moderator_per_day(since: Any, days: list[date]) -> list[dict[str, Any]]:
    counts = (
        decisions(since)
        .annotate(day=TruncDate("at"))
        .order_by()
        .values("user__username", "day")
        .annotate(n=Count("pk"))
    )
    table: dict[str, dict[date, int]] = defaultdict(dict)
    for row in counts:
        table[row["user__username"]][row["day"]] = row["n"]
    return [
        {
            "moderator": name,
            "days": [per_day.get(day, 0) for day in days],
            "total": sum(per_day.values()),
        }
        for name, per_day in sorted(table.items())
    ]


def median_wait(since: Any) -> tuple[str, int]:
    """Median time from entering review to the decision, over the window's decisions."""
    entered = ImageEvent.objects.filter(
        image_id=OuterRef("image_id"), to_state=State.IN_REVIEW, at__lte=OuterRef("at")
    ).order_by("-at")
    rows = (
        decisions(since)
        .filter(from_state=State.IN_REVIEW)
        .annotate(entered=Subquery(entered.values("at")[:1]))
        .order_by("-at")
        .values_list("at", "entered")[:MAX_TIMED]
    )
    waits = [(at - entered).total_seconds() for at, entered in rows if entered is not None]
    if not waits:
        return "", 0
    return short_duration(timedelta(seconds=statistics.median(waits))), len(waits)


def overturned(since: Any) -> dict[str, Any]:
    restored = ImageEvent.objects.filter(
        image_id=OuterRef("image_id"),
        kind=EventKind.TRANSITION,
        from_state=OuterRef("to_state"),
        at__gte=OuterRef("at"),
    ).exclude(to_state__in=OVERTURNABLE)
    refusals = decisions(since).filter(to_state__in=OVERTURNABLE)
    numbers = refusals.aggregate(
        total=Count("pk"), restored=Count("pk", filter=Q(Exists(restored)))
    )
    total, restored_count = numbers["total"], numbers["restored"]
    share = f"{100 * restored_count / total:.1f}%" if total else "-"
    return {"total": total, "restored": restored_count, "share": share}


def holders() -> list[tuple[str, int]]:
    held = (
        ReviewClaim.objects.filter(until__gt=timezone.now())
        .order_by()
        .values_list("moderator__username")
        .annotate(n=Count("pk"))
    )
    return sorted(held)


def dashboard_view(request: HttpRequest, context: dict[str, Any]) -> TemplateResponse:
    workspace.require(request, workspace.VIEW)
    today = timezone.localdate()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    since = timezone.make_aware(datetime.combine(days[0], time.min))
    wait, timed = median_wait(since)
    context = {
        **context,
        "title": "Team dashboard",
        "queue": workspace.queue_numbers(),
        "holders": holders(),
        "days": days,
        "rows": per_moderator_per_day(since, days),
        "median_wait": wait,
        "timed": timed,
        "overturned": overturned(since),
    }
    return TemplateResponse(request, "admin/review/dashboard.html", context)
