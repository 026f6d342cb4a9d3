"""JSON log lines carrying the request id, with secrets scrubbed before anything is written."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import dramatiq

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Bearer tokens, JWTs, PEM blocks, long base64 runs (image bytes) and key=value secrets.
REDACTIONS = (
    (
        re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.DOTALL),
        "[redacted key]",
    ),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[redacted token]"),
    (re.compile(r"(?i)\bbearer\s+\S+"), "Bearer [redacted]"),
    (re.compile(r"[A-Za-z0-9+/=_-]{200,}"), "[redacted data]"),
    (
        re.compile(r"(?i)\b(password|secret|token|signature|credential|private_key)(\W{1,3})\S+"),
        r"\1\2[redacted]",
    ),
)
STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
}


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> contextvars.Token[str]:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


def redact(text: str) -> str:
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", "") or _request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=lambda o: redact(str(o)))


class TaskContextMiddleware(dramatiq.Middleware):
    """Carry the request id in each message and restore it while the actor runs."""

    def before_enqueue(self, broker: Any, message: Any, delay: int) -> None:
        request_id = current_request_id()
        if request_id and "request_id" not in message.options:
            message.options["request_id"] = request_id

    def before_process_message(self, broker: Any, message: Any) -> None:
        set_request_id(message.options.get("request_id", ""))

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        set_request_id("")

    after_skip_message = after_process_message
