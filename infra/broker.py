"""Handing work to the broker without ever failing the caller: the database holds the truth."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from functools import cache
from typing import Any

import redis
from django.conf import settings
from dramatiq.brokers import redis as dramatiq_redis

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


class RedisBroker(dramatiq_redis.RedisBroker):
    """Dramatiq's Redis broker, under a new id after a fetch that failed.

    A fetch that timed out on a hung Redis may still run once Redis wakes: it moves messages
    into this broker's in-flight set, and the reply that would have handed them to the
    consumer is lost. Dramatiq gives in-flight messages back only when their broker's heartbeat
    goes stale, and a process heartbeats under one id for its whole life: those messages stayed
    in flight until the worker restarted (images left `received` after a 20 s hang,
    tests/ops/test_broker_hang.py). Under a new id the old one stops beating, and maintenance
    returns its messages once it is older than the heartbeat timeout (60 s). Messages the old
    id was still working on come back too and run again, which every actor allows."""

    def _dispatch(self, command: str) -> Any:
        dispatch = super()._dispatch(command)
        if command != "fetch":
            return dispatch

        def fetch(queue_name: str, *args: Any) -> Any:
            try:
                return dispatch(queue_name, *args)
            except (redis.ConnectionError, redis.TimeoutError):
                old, self.broker_id = self.broker_id, str(uuid.uuid4())
                log.warning(
                    "a fetch from Redis failed; broker %s continues as %s", old, self.broker_id
                )
                raise

        return fetch
