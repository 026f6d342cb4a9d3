"""Periodic jobs run inside every worker process (and the embedded worker): the reconciler and
the release of notifications whose retry time has come. Both are safe to run concurrently."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import dramatiq
from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)


def run_periodic_jobs() -> None:
    # Imported here: this module is loaded while the broker is set up, before actors may be.
    from notifications.tasks import enqueue_due_notifications
    from uploads.pipeline import reconcile_images

    for job in (reconcile_images, enqueue_due_notifications):
        try:
            job()
        except Exception:  # the database or broker is down: try again next round
            log.exception("periodic job %s failed", job.__name__)
        finally:
            close_old_connections()


class PeriodicThread(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(name="periodic-jobs", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        # Jitter spreads many worker processes over the interval.
        while not self.stopped.wait(self.interval * random.uniform(0.2, 1.0)):
            run_periodic_jobs()


class PeriodicJobsMiddleware(dramatiq.Middleware):
    """Starts the periodic jobs thread when a worker process boots."""

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        self.thread = PeriodicThread(settings.RECONCILE_INTERVAL_SECONDS)
        self.thread.start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if hasattr(self, "thread"):
            self.thread.stopped.set()
