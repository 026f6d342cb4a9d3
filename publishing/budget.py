"""The web process's budget for on-demand renders: one render per key at a time (across
processes, through the shared cache), at most RENDER_CONCURRENCY renders at once per process;
a request that cannot get its turn within RENDER_WAIT_SECONDS is told to come back (Busy).

A key's turn lasts until its object is stored and recorded (which may be after the answer is
sent: publishing.on_demand.Made); a process slot only while decoding and encoding."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

LOCK_SECONDS = 120  # a crashed process's lock on a key expires after this
POLL_SECONDS = 0.05


class Busy(Exception):
    """No turn to render within the wait; `retry_after` is a fair guess in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"busy; retry after {retry_after} s")
        self.retry_after = retry_after


_guard = threading.Lock()
_key_locks: dict[str, tuple[threading.Lock, int]] = {}
_slots: dict[int, threading.BoundedSemaphore] = {}


@dataclass(frozen=True)
class Turn:
    waited: bool  # another request may have made the key meanwhile: look again first
    deadline: float

    @contextmanager
    def rendering(self) -> Iterator[None]:
        """Hold one of the process's RENDER_CONCURRENCY slots while rendering; raises Busy
        when none frees up before the turn's deadline."""
        slots = _process_slots()
        if not slots.acquire(timeout=_left(self.deadline)):
            raise Busy(retry_after=_retry_after())
        try:
            yield
        finally:
            slots.release()


@contextmanager
def render_turn(key: str) -> Iterator[Turn]:
    """Hold the right to make `key` (render it with turn.rendering(), store and record it).
    Raises Busy."""
    deadline = time.monotonic() + settings.RENDER_WAIT_SECONDS
    with ExitStack() as stack:
        waited = stack.enter_context(_in_process(key, deadline))
        waited = stack.enter_context(_across_processes(key, deadline)) or waited
        yield Turn(waited, deadline)


@contextmanager
def _in_process(key: str, deadline: float) -> Iterator[bool]:
    with _guard:
        lock, users = _key_locks.get(key, (threading.Lock(), 0))
        _key_locks[key] = (lock, users + 1)
    try:
        waited = not lock.acquire(blocking=False)
        if waited and not lock.acquire(timeout=_left(deadline)):
            raise Busy(retry_after=_retry_after())
        try:
            yield waited
        finally:
            lock.release()
    finally:
        with _guard:
            lock, users = _key_locks[key]
            if users == 1:
                del _key_locks[key]
            else:
                _key_locks[key] = (lock, users - 1)


@contextmanager
def _across_processes(key: str, deadline: float) -> Iterator[bool]:
    name, token = f"render:{key}", uuid.uuid4().hex
    waited = False
    # add() is False when another process holds the key; None when the cache is down (its
    # errors are ignored): then only this process's lock applies.
    while cache.add(name, token, LOCK_SECONDS) is False:
        waited = True
        if time.monotonic() >= deadline:
            raise Busy(retry_after=_retry_after())
        time.sleep(POLL_SECONDS)
    try:
        yield waited
    finally:
        if cache.get(name) == token:
            cache.delete(name)


def _process_slots() -> threading.BoundedSemaphore:
    size = settings.RENDER_CONCURRENCY
    with _guard:
        return _slots.setdefault(size, threading.BoundedSemaphore(size))


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _retry_after() -> int:
    return max(1, round(settings.RENDER_WAIT_SECONDS / 2))
