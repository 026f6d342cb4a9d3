"""Gunicorn for the web role: `gunicorn imageservice.wsgi -c gunicorn.conf.py`.

Threaded workers (uploads wait on storage and the database, not the CPU), limits derived from
the upload limits in settings, JSON logs with the request id, and Prometheus's multiprocess mode
kept consistent across worker restarts. Run it behind a reverse proxy that buffers request
bodies (nginx, a cloud load balancer) so a slow client holds a proxy connection, not a thread.

Environment: PORT (8000) or GUNICORN_BIND, WEB_CONCURRENCY (worker processes, 2), WEB_THREADS
(threads per worker, 4), GUNICORN_TIMEOUT (seconds, 60), GUNICORN_MAX_REQUESTS (recycle a worker
after this many requests, 1000; 0 never), FORWARDED_ALLOW_IPS (read by gunicorn itself).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageservice.settings")

from django.conf import settings


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_env_int('PORT', 8000)}"
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", 2)
# Each upload holds a thread; past MAX_CONCURRENT_UPLOADS a process sheds load with a 503.
threads = min(_env_int("WEB_THREADS", 4), settings.MAX_CONCURRENT_UPLOADS)
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
control_socket_disable = True  # several instances may share a machine and a $HOME
# Decoding large images leaves the heap fragmented: recycle workers now and then.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = max_requests // 10

# Headers: the largest upload token must fit in one header line. Bodies are limited by Django
# (MAX_REQUEST_BYTES, from Content-Length, before reading) and should be by the proxy too.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = max(8190, len("Authorization: Bearer ") + settings.MAX_TOKEN_BYTES)

# Heartbeat files off a possibly slow container filesystem (gunicorn makes them with mkstemp).
_shm = "/dev/shm"  # noqa: S108
if Path(_shm).is_dir() and os.access(_shm, os.W_OK):
    worker_tmp_dir = _shm


class JsonAccessLogger(Logger):
    """One access log line per request as structured fields (no query string: it may carry a
    key), with the request id the application returned."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = int(str(resp.status).split(None, 1)[0])
        headers = {name.lower(): value for name, value in resp.headers}
        duration_ms = round(request_time.total_seconds() * 1000, 1)
        method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-")
        self.access_log.info(
            "%s %s %d %.1fms",
            method,
            path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": duration_ms,
                "remote_addr": environ.get("REMOTE_ADDR", ""),
                "user_agent": environ.get("HTTP_USER_AGENT", "")[:200],
                "request_id": headers.get("x-request-id", ""),
            },
        )


logger_class = JsonAccessLogger
_formatter = "json" if settings.LOG_FORMAT == "json" else "text"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": settings.LOGGING["formatters"],
    "filters": settings.LOGGING["filters"],
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _formatter,
            "filters": ["request_id"],
        },
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}


def _metrics_dir() -> Path | None:
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return Path(raw) if raw else None


def on_starting(server: Any) -> None:
    """Start with an empty metrics directory: files of an earlier run would be counted again."""
    directory = _metrics_dir()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if _metrics_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
