"""Embedded mode (no BROKER_URL, and EMBEDDED_WORKER=true or DEBUG): Dramatiq's StubBroker with
worker threads in the web process."""

from __future__ import annotations

import logging
import threading

import dramatiq
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q
from django.utils import timezone

from notifications.models import Notification
from notifications.tasks import enqueue_due_notifications
from uploads.pipeline import reconcile_images, take_back_leases

log = logging.getLogger(__name__)
_started = threading.Lock()
_worker: dramatiq.Worker | None = None


def start_embedded_worker() -> dramatiq.Worker | None:
    """Start the in-process worker once; a no-op when a real broker is configured or
    EMBEDDED_WORKER_THREADS is 0. Without a broker it must have been asked for."""
    global _worker
    if settings.BROKER_URL or settings.EMBEDDED_WORKER_THREADS == 0:
        return None
    if not settings.EMBEDDED_WORKER:
        raise ImproperlyConfigured(
            "BROKER_URL is not set: set it, or EMBEDDED_WORKER=true to run the tasks inside "
            "the web process (a development setup)"
        )
    with _started:
        if _worker is None:
            # One process holds the in-memory broker and its workers: every lease in the
            # database was taken by an earlier run of it, which is gone. Taken back before
            # this run claims anything.
            _take_back_every_lease()
            broker = dramatiq.get_broker()
            broker.emit_after("process_boot")
            _worker = dramatiq.Worker(broker, worker_threads=settings.EMBEDDED_WORKER_THREADS)
            _worker.start()
            # Pick up whatever an earlier run left unfinished, at once rather than in a minute.
            threading.Thread(target=_reconcile_now, daemon=True).start()
            log.info("embedded worker started with %d threads", settings.EMBEDDED_WORKER_THREADS)
    return _worker


def _take_back_every_lease() -> None:
    started = timezone.now()
    try:
        images = take_back_leases(started)
        sending = Q(state=Notification.State.SENDING, lease_until__gt=started)
        notices = Notification.objects.filter(sending).update(lease_until=started)
    except Exception:  # the database is not there yet: the leases run out on their own
        log.exception("could not take back the leases of the previous run")
        return
    if images or notices:
        log.info("took back the leases of %d images and %d notifications", images, notices)


def _reconcile_now() -> None:
    """The in-memory broker lost every message of the previous run: re-enqueue all of them."""
    try:
        count = reconcile_images(limit=100_000, quiet_for=0)
        enqueue_due_notifications(limit=100_000)
    except Exception:
        log.exception("start-up reconciliation failed")
        return
    if count:
        log.info("re-enqueued %d unfinished images from the previous run", count)
