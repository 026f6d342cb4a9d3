"""Shared pieces of the operations commands: `--since` values and progress lines on stderr."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Protocol

from django.core.management.base import CommandError
from django.utils import timezone

DURATION = re.compile(r"^(?P<amount>\d+)(?P<unit>[mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def since(value: str) -> datetime:
    """`24h`, `7d`, `30m`, or an ISO 8601 timestamp."""
    match = DURATION.match(value)
    if match:
        amount = int(match["amount"])
        return timezone.now() - timedelta(**{UNITS[match["unit"]]: amount})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        message = f"--since takes 24h, 7d, 30m or an ISO timestamp, not {value!r}"
        raise CommandError(message) from None
    return parsed if parsed.tzinfo else timezone.make_aware(parsed)


class Stream(Protocol):
    def write(self, msg: str, /) -> object: ...

    def flush(self) -> object: ...


class Progress:
    """Counts outcomes and writes a line every ``every`` items or ``seconds`` seconds,
    whichever comes first; nothing when ``quiet``."""

    def __init__(
        self, stream: Stream, label: str, *, every: int, seconds: float = 10.0, quiet: bool = False
    ) -> None:
        self.stream = stream
        self.label = label
        self.every = max(1, every)
        self.seconds = seconds
        self.quiet = quiet
        self.counts: Counter[str] = Counter()
        self.items = 0
        self.started = self.last = time.monotonic()

    def step(self, outcome: str, amount: int = 1) -> None:
        """One item done with ``outcome`` (e.g. "copied"); ``amount`` counts several at once."""
        self.counts[outcome] += amount
        before, self.items = self.items, self.items + amount
        now = time.monotonic()
        crossed = before // self.every != self.items // self.every
        if not self.quiet and (crossed or now - self.last >= self.seconds):
            self.last = now
            self.stream.write(f"{self.label}: {self.items} done, {self.describe()}\n")
            self.stream.flush()

    def describe(self) -> str:
        elapsed = time.monotonic() - self.started
        counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.counts.items()))
        return f"{counts or 'nothing'} in {elapsed:.1f} s ({self.items / max(elapsed, 1e-3):.0f}/s)"
