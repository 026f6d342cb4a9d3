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

# PEM blocks, JWTs, Authorization values, credentials in URLs, long base64 runs (image bytes, on
# one line or wrapped), byte literals, and the values of secret-looking keys. Every pattern is
# linear in the text (bounded repeats, runs matched only from their start): a log line must not
# be able to hang the process that writes it.
SECRET_WORDS = (
    "password|passwd|secret|token|signature|credential|private_key|api_key|apikey|access_key"
    "|authorization"
)
B64 = "A-Za-z0-9+/="
REDACTIONS = (
    (
        re.compile(r"-----BEGIN [A-Z ]{1,40}-----.*?(?:-----END [A-Z ]{1,40}-----|$)", re.DOTALL),
        "[redacted key]",
    ),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[redacted token]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+\S+"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,30}://[^/\s:@]{0,200}:)[^@\s/]{1,200}@"),
        r"\1[redacted]@",
    ),
    (
        re.compile(rf"(?<![{B64}])(?:[{B64}]{{40,}}(?:\\r)?(?:\\n|\r?\n)){{3,}}[{B64}]*"),
        "[redacted data]",
    ),
    (re.compile(rf"(?<![{B64}_-])[{B64}_-]{{200,}}"), "[redacted data]"),
    (re.compile(r"\bb'(?:[^\\']|\\.){64,}?(?:'|$)"), "[redacted bytes]"),
    (re.compile(r'\bb"(?:[^\\"]|\\.){64,}?(?:"|$)'), "[redacted bytes]"),
    (
        re.compile(
            rf"(?i)((?:{SECRET_WORDS})[\w-]{{0,40}})(['\"]?\s*[:=]\s*|\W{{1,3}})(?!\[redacted)\S+"
        ),
        r"\1\2[redacted]",
    ),
)
# Past this a message is cut before redaction: no log line needs more, and the cost stays bounded.
MAX_LOGGED_CHARS = 64 * 1024
SECRET_KEY = re.compile(rf"(?i)({SECRET_WORDS})")
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
    if len(text) > MAX_LOGGED_CHARS:
        text = f"{text[:MAX_LOGGED_CHARS]}... [{len(text) - MAX_LOGGED_CHARS} more characters]"
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any) -> Any:
    """A JSON-ready copy of `value` with secrets redacted: strings, bytes, containers, and the
    values under secret-looking keys."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): scrub_item(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    return redact(str(value))


def scrub_item(key: str, value: Any) -> Any:
    return "[redacted]" if SECRET_KEY.search(key) else scrub(value)


def safe_message(record: logging.LogRecord) -> str:
    """The record's message with byte arguments (image data) replaced by their length."""
    args = record.args
    if isinstance(args, tuple) and any(isinstance(a, bytes | bytearray) for a in args):
        args = tuple(f"[{len(a)} bytes]" if isinstance(a, bytes | bytearray) else a for a in args)
    elif isinstance(args, dict) and any(isinstance(a, bytes | bytearray) for a in args.values()):
        args = {
            k: f"[{len(a)} bytes]" if isinstance(a, bytes | bytearray) else a
            for k, a in args.items()
        }
    message = str(record.msg)
    return redact(message % args if args else message)


class RequestIdFilter(logging.Filter):
    """Adds the current request id, unless the record brings its own (gunicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception.
    Everything that reaches the line goes through `scrub`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": safe_message(record),
            "request_id": getattr(record, "request_id", "") or _request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = scrub_item(key, value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, default=lambda o: redact(str(o)))


class TextFormatter(logging.Formatter):
    """The plain-text format (LOG_FORMAT=text), redacted like the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
