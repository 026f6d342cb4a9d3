"""Handing work to the broker without ever failing the caller: the database holds the truth."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import redis

log = logging.getLogger(__name__)


def send_safely(actor: Any, *args: Any) -> bool:
    """Enqueue; if the broker is down, log it and leave the work to the reconciler."""
    try:
        actor.send(*args)
    except Exception as exc:  # any broker error: the database still holds the truth
        log.warning("enqueue of %s failed, the reconciler will retry: %s", actor.actor_name, exc)
        return False
    return True


@cache
def redis_for(url: str, timeout: float) -> Any:
    """A Redis client with short timeouts, one per URL and process."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
