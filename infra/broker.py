"""Handing work to the broker without ever failing the caller: the database holds the truth."""

from __future__ import annotations

import logging
import threading
import time
from functools import cache
from typing import Any

import redis
from django.conf import settings

log = logging.getLogger(__name__)


class _Backoff:
    """After a failed send, skip sends for BROKER_BACKOFF_SECONDS (per process): while the
    broker hangs, only one request in that window waits for its timeout."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0

    def active(self) -> bool:
        return time.monotonic() < self.until

    def start(self) -> None:
        with self.lock:
            self.until = time.monotonic() + settings.BROKER_BACKOFF_SECONDS

    def reset(self) -> None:
        self.until = 0.0


backoff = _Backoff()


def send_safely(actor: Any, *args: Any) -> bool:
    """Enqueue; if the broker is down (or failed a moment ago), log it and return False: the
    caller marks the work for the reconciler's next round."""
    if backoff.active():
        log.info("broker failed a moment ago; %s left to the reconciler", actor.actor_name)
        return False
    try:
        actor.send(*args)
    except Exception as exc:  # any broker error: the database still holds the truth
        backoff.start()
        log.warning("enqueue of %s failed, the reconciler will retry: %s", actor.actor_name, exc)
        return False
    return True


@cache
def redis_for(url: str, timeout: float) -> Any:
    """A Redis client with short timeouts, one per URL and process."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
