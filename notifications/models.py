"""The outbox of notifications to PinsterApi and the record of every delivery attempt.

A notification is written in the same transaction as the image's decision, with a stable event
id (its primary key) that is sent as a header on every attempt so the receiver can drop
duplicates. Retries live in this table (`next_attempt_at`), not in the broker: a message only
says "look at notification X now"; the row decides whether an attempt is due.

Only what is still true is sent, in the order it was decided: just before each attempt an
approval is checked against its image (one no longer published, or followed by a later
decision, is not sent: `superseded`), and a notification waits while an earlier one of the
same image is pending or being sent.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from infra.broker import send_safely
from notifications import payloads
from uploads.models import Actor, EventKind, Image, record_event
from uploads.models import State as ImageState

if TYPE_CHECKING:
    from notifications.delivery import Outcome

# Backoff: 1 min, 2 min, 4 min ... capped at 6 h, each with "equal jitter" (half to all of it),
# until NOTIFY_RETRY_HOURS after the event: 23 to 27 attempts over three days.
RETRY_BASE_SECONDS = 60
RETRY_MAX_DELAY_SECONDS = 6 * 3600
# How long one attempt may hold a notification before another worker may take it over.
SENDING_LEASE_SECONDS = 90


def retry_delay(attempts: int, *, retry_after: float | None = None) -> timedelta:
    """The wait after the `attempts`-th failed attempt. A Retry-After from the receiver wins."""
    if retry_after is not None:
        return timedelta(seconds=max(1.0, retry_after))
    nominal = min(RETRY_MAX_DELAY_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return timedelta(seconds=nominal * random.uniform(0.5, 1.0))


def retry_window() -> timedelta:
    return timedelta(hours=settings.NOTIFY_RETRY_HOURS)


def target_url(kind: str) -> str:
    if kind == Notification.Kind.APPROVED:
        return f"{settings.PINSTER_API_URL}/v1/images/"
    return settings.REJECTION_NOTIFY_URL


class NotificationQuerySet(models.QuerySet["Notification"]):
    def create_for(self, image: Image, kind: str) -> Notification:
        """Write the notification for an image's decision. Call inside the transaction of the
        state transition; delivery is enqueued when it commits (or left to the periodic job)."""
        now = timezone.now()
        url = target_url(kind)
        event_id = uuid.uuid4()
        notification = self.create(
            id=event_id,
            image=image,
            kind=kind,
            url=url,
            body=payloads.body_for(image, kind, str(event_id)),
            state=Notification.State.PENDING if url else Notification.State.SKIPPED,
            created_at=now,
            next_attempt_at=now if url else None,
            retry_until=now + retry_window(),
            enqueued_at=now if url else None,
        )
        if url:
            transaction.on_commit(notification.enqueue)
        else:
            notification.log_event("not sent: REJECTION_NOTIFY_URL is not set", now=now)
        return notification

    def due(self, now: datetime) -> NotificationQuerySet:
        """Pending and due but not enqueued for this attempt, or abandoned mid-attempt; in either
        case also when the last enqueue is older than STALE_AFTER_SECONDS (a lost message)."""
        lost = Q(enqueued_at__isnull=True) | Q(
            enqueued_at__lte=now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
        )
        pending = Q(state=Notification.State.PENDING, next_attempt_at__lte=now) & (
            lost | Q(enqueued_at__lt=F("next_attempt_at"))
        )
        abandoned = Q(state=Notification.State.SENDING, lease_until__lt=now) & (
            lost | Q(enqueued_at__lt=F("lease_until"))
        )
        return self.filter(pending | abandoned)


class Notification(models.Model):
    class Kind(models.TextChoices):
        APPROVED = "approved", "Approved (image created in PinsterApi)"
        REJECTED = "rejected", "Rejected"
        TAKEN_DOWN = "taken_down", "Taken down"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Not sent (no URL configured)"
        SUPERSEDED = "superseded", "Not sent (no longer true)"

    # The primary key is the event id sent as Idempotency-Key / X-Event-Id on every attempt.
    id = models.UUIDField("event id", primary_key=True, default=uuid.uuid4, editable=False)
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.CharField(max_length=500, blank=True)
    body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retry_until = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        permissions = [("redeliver_notification", "Can redeliver a notification to PinsterApi")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} notification {self.pk} ({self.state})"

    @property
    def event_id(self) -> str:
        return str(self.pk)

    def enqueue(self) -> None:
        """Send the delivery message; if the broker is down the periodic job will send it."""
        from notifications.tasks import notify_pinster  # tasks import this module

        if not send_safely(notify_pinster, self.event_id):
            Notification.objects.filter(pk=self.pk).update(enqueued_at=None)

    def claim(self, now: datetime | None = None) -> bool:
        """Take the notification for one attempt if it is due (or its last attempt was
        abandoned). False when it is delivered, failed, not yet due or being sent: so a duplicate
        message does nothing. Safe to run concurrently."""
        now = now or timezone.now()
        if self._give_up_on_a_crash_loop(now):
            return False
        claimable = Q(state=self.State.PENDING, next_attempt_at__lte=now) | Q(
            state=self.State.SENDING, lease_until__lt=now
        )
        if self._waits_for_an_earlier_one(claimable, now):
            return False
        stale = self.no_longer_true()
        if stale:
            self._supersede(claimable, stale, now)
            return False
        claimed = Notification.objects.filter(claimable, pk=self.pk).update(
            state=self.State.SENDING,
            lease_until=now + timedelta(seconds=SENDING_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
        if claimed:
            self.refresh_from_db()
        return bool(claimed)

    def earlier_pending(self) -> NotificationQuerySet:
        """Notifications of the same image decided before this one and not finished yet."""
        return Notification.objects.filter(
            created_at__lt=self.created_at,
            image_id=self.image_id,
            state__in=[self.State.PENDING, self.State.SENDING],
        )

    def _waits_for_an_earlier_one(self, claimable: Q, now: datetime) -> bool:
        """Delivery in the order of the decisions: while an earlier notification of the image
        is unfinished this one is not sent; its next attempt moves to the earlier one's (it is
        also sent for as soon as the earlier one finishes, see `_next_in_line`)."""
        earlier = None
        for candidate in self.earlier_pending().order_by("created_at", "pk"):
            why = candidate.no_longer_true()
            if not why:
                earlier = candidate
                break
            claimable_then = Q(state=self.State.PENDING) | Q(
                state=self.State.SENDING, lease_until__lt=now
            )
            if not candidate._supersede(claimable_then, why, now, kick=False):
                earlier = candidate  # being sent right now: wait for its outcome
                break
        if earlier is None:
            return False
        after = max(now, earlier.next_attempt_at or now, earlier.lease_until or now)
        Notification.objects.filter(claimable, pk=self.pk, state=self.State.PENDING).update(
            next_attempt_at=after
        )
        return True

    def no_longer_true(self) -> str:
        """Why this notification would tell something that is no longer so ("" if it is
        still true): an approval of an image not published any more, or followed by a later
        decision (a takedown, a rejection after a restore, a newer approval). Rejections and
        takedowns stay true: they tell the uploader what was decided and why, and a later
        restore is told after them."""
        if self.kind != self.Kind.APPROVED:
            return ""
        state = Image.objects.filter(pk=self.image_id).values_list("state", flat=True).first()
        if state != ImageState.PUBLISHED:
            return f"the image is {state} now"
        later = Notification.objects.filter(image_id=self.image_id, created_at__gt=self.created_at)
        newer = later.order_by("created_at").values_list("kind", flat=True).first()
        if newer is not None:
            return f"a later {newer} notice supersedes it"
        return ""

    def _supersede(self, claimable: Q, why: str, now: datetime, *, kick: bool = True) -> bool:
        """Record that this notification will not be sent; False if it was not claimable."""
        reason = f"superseded: {why}"
        with transaction.atomic():
            done = Notification.objects.filter(claimable, pk=self.pk).update(
                state=self.State.SUPERSEDED,
                next_attempt_at=None,
                lease_until=None,
                failure_reason=reason,
            )
            if done:
                self.state, self.failure_reason = self.State.SUPERSEDED, reason
                self.next_attempt_at = self.lease_until = None
                self.log_event(f"not sent, {reason}", now=now)
                if kick:
                    self._next_in_line(now)
        return bool(done)

    def _next_in_line(self, now: datetime) -> None:
        """This one is finished: the next pending notification of the image is due now."""
        following = (
            Notification.objects.filter(
                image_id=self.image_id, state=self.State.PENDING, created_at__gte=self.created_at
            )
            .exclude(pk=self.pk)
            .order_by("created_at", "pk")
            .first()
        )
        if following is None or following.last_status_code == 429:
            return
        Notification.objects.filter(pk=following.pk, state=self.State.PENDING).update(
            next_attempt_at=now, enqueued_at=now
        )
        transaction.on_commit(following.enqueue)

    def _give_up_on_a_crash_loop(self, now: datetime) -> bool:
        """Fail a notification whose attempts keep dying with their worker (killed, out of
        memory): each claim counts an attempt before the request, and one that never recorded
        its outcome was abandoned. After MAX_STAGE_ATTEMPTS abandoned attempts in a row (since
        the last recorded one) it is failed, with an attempt row saying so (which also starts
        the count again after a redelivery), visible in the admin, where staff may redeliver
        it; the retry window would otherwise let it take a worker down every lease for days."""
        if self.state != self.State.SENDING or self.lease_until is None or self.lease_until >= now:
            return False
        last_recorded = self.delivery_attempts.aggregate(last=Max("number"))["last"] or 0
        abandoned = self.attempts - last_recorded
        if abandoned < settings.MAX_STAGE_ATTEMPTS:
            return False
        reason = f"gave up: {abandoned} attempts in a row never finished (their worker died)"
        with transaction.atomic():
            taken = Notification.objects.filter(
                pk=self.pk, state=self.State.SENDING, lease_until__lt=now, attempts=self.attempts
            ).update(
                state=self.State.FAILED,
                lease_until=None,
                next_attempt_at=None,
                failure_reason=reason,
            )
            if taken:
                DeliveryAttempt.objects.create(
                    notification=self,
                    number=self.attempts,
                    at=now,
                    latency_ms=0,
                    error=reason,
                    result=self.State.FAILED,
                )
                self.state, self.lease_until, self.failure_reason = self.State.FAILED, None, reason
                self.next_attempt_at = None
                self.log_event(f"notification failed: {reason}", now=now)
                self._next_in_line(now)
        return True

    def record(self, outcome: Outcome, now: datetime | None = None) -> None:
        """Record a finished attempt and decide what comes next: delivered, retry later, or
        failed (refused by the receiver, or the retry window is over)."""
        now = now or timezone.now()
        values = self._after_attempt(outcome, now)
        with transaction.atomic():
            DeliveryAttempt.objects.create(
                notification=self,
                number=self.attempts,
                at=outcome.started_at,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
                response_snippet=outcome.snippet,
                result=values["state"],
            )
            # Only the holder of this attempt's claim moves the state on.
            mine = Notification.objects.filter(
                pk=self.pk, state=self.State.SENDING, attempts=self.attempts
            )
            if not mine.update(**values):
                return
            for name, value in values.items():
                setattr(self, name, value)
            if self.state == self.State.DELIVERED:
                self.log_event(f"{self.receiver} was told (HTTP {outcome.status_code})", now=now)
                self._receiver_is_back(now)
                self._next_in_line(now)
            elif self.state == self.State.FAILED:
                self.log_event(f"notification failed: {self.failure_reason}", now=now)
                self._next_in_line(now)

    def _receiver_is_back(self, now: datetime) -> None:
        """The receiver answers again: what waits for it after an outage is due now, not hours
        later when each backoff ends (except what it rate-limited)."""
        Notification.objects.filter(
            state=self.State.PENDING, url=self.url, next_attempt_at__gt=now
        ).exclude(last_status_code=429).update(next_attempt_at=now)

    def _after_attempt(self, outcome: Outcome, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {"lease_until": None, "last_status_code": outcome.status_code}
        if outcome.delivered:
            return values | {
                "state": self.State.DELIVERED,
                "delivered_at": now,
                "next_attempt_at": None,
                "failure_reason": "",
            }
        if outcome.permanent or now >= self.retry_until:
            reason = (
                f"refused by the receiver: {outcome.summary}"
                if outcome.permanent
                else f"gave up after {self.attempts} attempts; last: {outcome.summary}"
            )
            return values | {
                "state": self.State.FAILED,
                "next_attempt_at": None,
                "failure_reason": reason,
            }
        next_at = now + retry_delay(self.attempts, retry_after=outcome.retry_after)
        if outcome.retry_after is None:
            next_at = min(next_at, self.retry_until)  # the last attempt is at the deadline
        return values | {
            "state": self.State.PENDING,
            "next_attempt_at": next_at,
            "failure_reason": outcome.summary,
        }

    def redeliver(self, *, by: Any) -> bool:
        """Send again with the same event id, a fresh token and a new retry window, to the URL
        configured now. False when it is being sent or no URL is configured for its kind."""
        now = timezone.now()
        url = target_url(self.kind)
        if not url:
            return False
        with transaction.atomic():
            values = {
                "state": self.State.PENDING,
                "url": url,
                "next_attempt_at": now,
                "retry_until": now + retry_window(),
                "enqueued_at": now,
                "lease_until": None,
                "failure_reason": "",
            }
            idle = ~Q(state=self.State.SENDING) | Q(lease_until__lt=now)
            if not Notification.objects.filter(idle, pk=self.pk).update(**values):
                return False
            for name, value in values.items():
                setattr(self, name, value)
            self.log_event("redelivery requested", now=now, user=by)
            transaction.on_commit(self.enqueue)
        return True

    @property
    def receiver(self) -> str:
        return "PinsterApi" if self.kind == self.Kind.APPROVED else "the rejection receiver"

    def log_event(self, reason: str, *, now: datetime, user: Any = None) -> None:
        """Put the notification on the image's timeline."""
        record_event(
            self.image_id,
            EventKind.NOTIFICATION,
            at=now,
            actor=Actor.user(user) if user else Actor.NOTIFY_PINSTER,
            user=user,
            reason=reason,
            details={
                "notification": self.event_id,
                "kind": self.kind,
                "state": self.state,
                "attempts": self.attempts,
                "url": self.url,
            },
        )


class DeliveryAttempt(models.Model):
    """One HTTP attempt, as it happened. Never holds the token or a key."""

    notification = models.ForeignKey(
        Notification, on_delete=models.PROTECT, related_name="delivery_attempts"
    )
    number = models.PositiveIntegerField()
    at = models.DateTimeField(db_index=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    response_snippet = models.TextField(blank=True)
    result = models.CharField(max_length=16, choices=Notification.State.choices)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} at {self.at:%Y-%m-%d %H:%M:%S}: {self.status_code or '-'}"
