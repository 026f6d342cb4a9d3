"""One HTTP attempt to deliver a notification, and what its answer means for the next one."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import requests
from django.conf import settings
from django.utils import timezone

from infra.logging import current_request_id, redact
from notifications import signing

if TYPE_CHECKING:
    from notifications.models import Notification

log = logging.getLogger(__name__)

# 4xx answers that may succeed later; any other 4xx means this event will never be accepted.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})
SNIPPET_CHARS = 500
MAX_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str = ""
    snippet: str = ""
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def permanent(self) -> bool:
        code = self.status_code
        return code is not None and 400 <= code < 500 and code not in RETRYABLE_4XX

    @property
    def summary(self) -> str:
        if self.status_code is None:
            return self.error
        return f"HTTP {self.status_code} {self.snippet[:200]}".strip()


def send(notification: Notification) -> Outcome:
    """POST the notification once, with a fresh token; never raises for network, HTTP or
    signing errors, and keeps the token out of everything it returns or logs."""
    started_at, started = timezone.now(), time.monotonic()
    data = notification.body["data"]
    try:
        token = signing.service_token(
            imageable_type=data["imageable_type"], imageable_id=data["imageable_id"]
        )
    except (ValueError, TypeError, IndexError) as exc:  # a bad key: no detail, it may quote it
        outcome = Outcome(started_at, 0, error=f"cannot sign the token: {type(exc).__name__}")
    else:
        body = json.dumps(notification.body)
        outcome = _post(notification.url, body, _headers(notification, token), started_at, started)
        outcome = _scrubbed(outcome, token)
    level = logging.INFO if outcome.delivered else logging.WARNING
    log.log(
        level,
        "notification %s (%s) attempt %s to %s: %s in %d ms",
        notification.event_id,
        notification.kind,
        notification.attempts,
        notification.url,
        outcome.summary or "no answer",
        outcome.latency_ms,
    )
    return outcome


def _headers(notification: Notification, token: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": notification.event_id,
        "X-Event-Id": notification.event_id,
        "User-Agent": "ImageService",
    }
    if current_request_id():
        headers["X-Request-Id"] = current_request_id()
    return headers


def _post(
    url: str, body: str, headers: dict[str, str], started_at: datetime, started: float
) -> Outcome:
    timeout = (settings.NOTIFY_CONNECT_TIMEOUT, settings.NOTIFY_TOTAL_TIMEOUT)
    deadline = started + settings.NOTIFY_TOTAL_TIMEOUT
    try:
        with requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            snippet = _read_snippet(response, deadline)
            retry_after = _retry_after(response)
    except (requests.RequestException, OSError, ValueError) as exc:
        return Outcome(started_at, _ms_since(started), error=f"{type(exc).__name__}: {exc}")
    return Outcome(
        started_at,
        _ms_since(started),
        status_code=response.status_code,
        snippet=snippet,
        retry_after=retry_after,
    )


def _read_snippet(response: requests.Response, deadline: float) -> str:
    """Read the start of the answer, holding the whole attempt to NOTIFY_TOTAL_TIMEOUT (the
    read timeout alone only bounds the wait between two packets)."""
    received = b""
    for chunk in response.iter_content(4096):
        received += chunk
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete answer within {settings.NOTIFY_TOTAL_TIMEOUT} s")
        if len(received) >= MAX_READ_BYTES:
            break
    return received.decode("utf-8", "replace")


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    if response.status_code not in RETRY_AFTER_STATUSES or not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _scrubbed(outcome: Outcome, token: str) -> Outcome:
    def clean(text: str) -> str:
        return redact(text.replace(token, "[redacted]"))

    return Outcome(
        outcome.started_at,
        outcome.latency_ms,
        outcome.status_code,
        clean(outcome.error),
        clean(outcome.snippet)[:SNIPPET_CHARS],  # cut after cleaning: no half token survives
        outcome.retry_after,
    )


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
