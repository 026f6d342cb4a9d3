"""The pipeline's invariant, checked against the database and the storage buckets.

Every accepted image has its row, its private original with the recorded sha256, a state that is
final or still moving (not `Image.objects.stale()`), no transition applied twice, the public
objects it was published with, and its notification delivered, pending on schedule or visibly
failed. `python manage.py check_integrity` runs this; the fault tests and the load test end with
it. The images table is read in keyset batches and storage is checked by a small thread pool, so
memory stays flat and a large table takes one pass.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from publishing.storage_keys import list_objects
from uploads.models import EventKind, Image, ImageEvent, State

PUBLIC_KEY = re.compile(r"[0-9a-f]{32}(_|$)")

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    kind: str
    image_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} image={self.image_id}: {self.detail}"


@dataclass
class Report:
    images: int = 0
    originals_hashed: int = 0
    public_objects: int = 0
    notifications: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return (
            f"checked {self.images} image(s), {self.originals_hashed} original(s) hashed, "
            f"{self.public_objects} public object(s), {self.notifications} notification(s): "
            f"{verdict}"
        )


@dataclass(frozen=True)
class Options:
    checksums: bool = True  # hash every original (else: exists with the recorded size)
    since: datetime | None = None  # only images created since then
    orphans: bool = False  # also list private storage for originals no row refers to
    batch_size: int = 500
    workers: int = 8


def check_integrity(options: Options | None = None, *, now: datetime | None = None) -> Report:
    """Check the invariant; returns a report listing every violation found."""
    options = options or Options()
    now = now or timezone.now()
    report = Report()
    images = Image.objects.all()
    if options.since is not None:
        images = images.filter(created_at__gte=options.since)
    pool = _pool(options.workers)
    for batch in _batches(images, options.batch_size):
        report.images += len(batch)
        _check_storage(batch, options, pool, report)
    if options.orphans:
        _check_orphans(options, now, report)
    _check_states(images, now, report)
    _check_transitions(options, report)
    _check_notifications(images, now, report)
    return report


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    """Kept between runs: each thread's storage client (boto3's are per thread) is reused."""
    return ThreadPoolExecutor(workers, thread_name_prefix="integrity")


def _batches(images: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """Keyset pagination on the primary key: no OFFSET, no long-lived cursor."""
    fields = ("pk", "md5", "sha256", "byte_size", "state", "renditions")
    last = None
    while True:
        page = images.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        batch = list(page.values(*fields)[:size])
        if not batch:
            return
        yield batch
        last = batch[-1]["pk"]


# --- Storage ----------------------------------------------------------------------------------


def _check_storage(
    batch: list[dict[str, Any]], options: Options, pool: ThreadPoolExecutor, report: Report
) -> None:
    jobs: list[tuple[Callable[..., Problem | None], tuple[Any, ...]]] = []
    for row in batch:
        jobs.append((_check_original, (row, options.checksums)))
        if row["state"] == State.PUBLISHED:
            jobs += [(_check_public, (row, key)) for key in row["renditions"] or [row["md5"]]]
    report.public_objects += len(jobs) - len(batch)
    for problem in pool.map(lambda job: job[0](*job[1]), jobs):
        if problem is not None:
            report.problems.append(problem)
    if options.checksums:
        report.originals_hashed += len(batch)


def _check_original(row: dict[str, Any], checksums: bool) -> Problem | None:
    storage = storages["default"]
    image_id, md5 = str(row["pk"]), row["md5"]
    try:
        if checksums:
            digest = _sha256_of(storage, md5)
            if digest != row["sha256"]:
                return Problem("checksum_mismatch", image_id, f"original {md5} hashes to {digest}")
        else:
            size = storage.size(md5)
            if size != row["byte_size"]:
                return Problem("size_mismatch", image_id, f"original {md5} has {size} bytes")
    except Exception as exc:  # a missing object and an unreachable store look alike here
        return _missing_or_error(storage, "missing_original", image_id, md5, exc)
    return None


def _check_public(row: dict[str, Any], key: str) -> Problem | None:
    storage = storages["public"]
    try:
        if storage.exists(key):
            return None
    except Exception as exc:
        return Problem("storage_error", str(row["pk"]), f"public {key}: {exc}")
    return Problem("missing_public_object", str(row["pk"]), f"published {key} is not stored")


def _sha256_of(storage: Storage, name: str) -> str:
    digest = hashlib.sha256()
    with storage.open(name, "rb") as stored:
        for chunk in stored.chunks(READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_or_error(
    storage: Storage, kind: str, image_id: str, key: str, exc: Exception
) -> Problem:
    try:
        missing = not storage.exists(key)
    except Exception:
        missing = False
    if missing:
        return Problem(kind, image_id, f"{key} is not stored")
    return Problem("storage_error", image_id, f"{key}: {type(exc).__name__}: {exc}")


def _check_orphans(options: Options, now: datetime, report: Report) -> None:
    """Originals that no row refers to (an upload that could not clean up after itself). Only
    those older than STALE_AFTER_SECONDS: a younger one may belong to an upload in flight."""
    cutoff = now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
    keys = [
        obj.key for obj in list_objects("default") if obj.modified is None or obj.modified <= cutoff
    ]
    for start in range(0, len(keys), options.batch_size):
        batch = keys[start : start + options.batch_size]
        known = set(Image.objects.filter(md5__in=batch).values_list("md5", flat=True))
        for key in batch:
            if key not in known:
                report.problems.append(Problem("orphaned_original", "-", f"{key} has no row"))
    _check_unpublished_public_objects(options, cutoff, report)


def _check_unpublished_public_objects(options: Options, cutoff: datetime, report: Report) -> None:
    """Public objects (`<md5>`, `<md5>_...`) of bytes no image is published or being published
    with: taken-down, rejected or failed content still reachable. Older than the cutoff only:
    a younger one may belong to a publication in flight."""
    keys = [
        obj.key
        for obj in list_objects("public")
        if PUBLIC_KEY.match(obj.key) and (obj.modified is None or obj.modified <= cutoff)
    ]
    for start in range(0, len(keys), options.batch_size):
        batch = keys[start : start + options.batch_size]
        shown = set(
            Image.objects.filter(
                md5__in={key[:32] for key in batch}, state__in=[State.PUBLISHED, State.PUBLISHING]
            ).values_list("md5", flat=True)
        )
        for key in batch:
            if key[:32] not in shown:
                problem = Problem("unpublished_public_object", "-", f"public {key}: not published")
                report.problems.append(problem)


# --- States and history -------------------------------------------------------------------


def _check_states(images: Any, now: datetime, report: Report) -> None:
    for pk, state, changed in images.stale(now).values_list("pk", "state", "state_changed_at"):
        report.problems.append(
            Problem("stale", str(pk), f"{state} since {changed:%Y-%m-%d %H:%M:%S}, not moving")
        )
    for pk in images.filter(state=State.FAILED, failure_reason="").values_list("pk", flat=True):
        report.problems.append(Problem("failed_without_reason", str(pk), "no failure reason"))


# A restore (rejected or taken down → approved) or a retry (failed → the failed stage) starts
# a new run of the pipeline, which makes its transitions again.
REOPENED_FROM = [State.REJECTED, State.TAKEN_DOWN, State.FAILED]


def _check_transitions(options: Options, report: Report) -> None:
    """No state change happened twice within one run of the pipeline (no path in the state
    machine repeats a transition; a restore or a retry starts a new run)."""
    events = ImageEvent.objects.filter(kind=EventKind.TRANSITION)
    if options.since is not None:
        events = events.filter(image__created_at__gte=options.since)
    reopenings = ImageEvent.objects.filter(
        kind=EventKind.TRANSITION, image_id=OuterRef("image_id"), from_state__in=REOPENED_FROM
    ).filter(Q(at__lt=OuterRef("at")) | Q(at=OuterRef("at"), id__lte=OuterRef("id")))
    run = Subquery(
        reopenings.order_by().values("image_id").annotate(n=Count("id")).values("n")[:1],
        output_field=IntegerField(),
    )
    repeated = (
        events.annotate(run=Coalesce(run, Value(0)))
        .values("image_id", "run", "from_state", "to_state")
        .annotate(times=Count("id"))
        .filter(times__gt=1)
    )
    for row in repeated:
        report.problems.append(
            Problem(
                "repeated_transition",
                str(row["image_id"]),
                f"{row['from_state']} -> {row['to_state']} happened {row['times']} times",
            )
        )


# --- Notifications ------------------------------------------------------------------------


def _notification_model() -> Any:
    try:
        from notifications.models import Notification
    except ImportError:  # an installation without the notifications app
        return None
    return Notification


def _check_notifications(images: Any, now: datetime, report: Report) -> None:
    notification = _notification_model()
    if notification is None:
        return
    kinds = {
        State.PUBLISHED: notification.Kind.APPROVED,
        State.REJECTED: notification.Kind.REJECTED,
        State.TAKEN_DOWN: notification.Kind.TAKEN_DOWN,
    }
    for state, kind in kinds.items():
        told = notification.objects.filter(image=OuterRef("pk"), kind=kind)
        for pk in images.filter(state=state).filter(~Exists(told)).values_list("pk", flat=True):
            report.problems.append(Problem("notification_missing", str(pk), f"no {kind} notice"))
    notices = notification.objects.filter(image__in=images.values("pk"))
    report.notifications += notices.count()
    stale = now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
    stuck = Q(state=notification.State.PENDING, next_attempt_at__lte=stale) & (
        Q(enqueued_at__isnull=True)
        | Q(enqueued_at__lte=stale)
        | Q(enqueued_at__lt=F("next_attempt_at"))
    ) | Q(state=notification.State.SENDING, lease_until__lte=stale)
    for pk, image_id, state in notices.filter(stuck).values_list("pk", "image_id", "state"):
        report.problems.append(
            Problem("notification_stuck", str(image_id), f"notification {pk} {state}, not moving")
        )
    silent = notices.filter(state=notification.State.FAILED, failure_reason="")
    for pk, image_id in silent.values_list("pk", "image_id"):
        report.problems.append(
            Problem("notification_failed_silently", str(image_id), f"notification {pk}")
        )
