"""Liveness and readiness probes.

`/healthz` says the process answers and touches nothing else. `/readyz` checks that the
database, the storage buckets and the broker answer, each within READINESS_TIMEOUT_SECONDS and
all at once, so the probe returns within that time even when a dependency hangs.

`ProbeMiddleware` answers both, and /metrics, before host validation, sessions and request
metrics: a load balancer, an orchestrator or Prometheus calls by IP address, which is not in
ALLOWED_HOSTS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.config import Config
from django.conf import settings
from django.core.files.storage import storages
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from infra.broker import redis_for
from infra.metrics import metrics_view

log = logging.getLogger(__name__)

# Threads outlive a check that hangs until its own client times out; a few spare ones keep
# the next probes answering meanwhile.
_checks_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")


def check_database() -> str:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this thread's own connection: never left open between probes
    return connection.vendor


def storage_targets() -> list[tuple[str, Any]]:
    """(name, S3 client or local directory) for each storage. Building an S3 client reads
    botocore's models, which takes a second in a cold process: it happens here, before the
    clock starts, and once per storage object."""
    targets: list[tuple[str, Any]] = []
    for alias in ("default", "public"):
        storage: Any = storages[alias]
        if hasattr(storage, "bucket_name"):
            targets.append((storage.bucket_name, _s3_probe_client(storage)))
        else:
            targets.append((str(storage.location), Path(storage.location)))
    return list(dict(targets).items())


@cache
def _s3_probe_client(storage: Any) -> Any:
    """The storage's own credentials, endpoint and options, with short timeouts and no retries."""
    timeout = settings.READINESS_TIMEOUT_SECONDS
    config = storage.client_config.merge(
        Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    )
    return storage._create_session().client(
        "s3",
        region_name=storage.region_name,
        use_ssl=storage.use_ssl,
        endpoint_url=storage.endpoint_url,
        config=config,
        verify=storage.verify,
    )


def check_storage(targets: list[tuple[str, Any]]) -> str:
    """Each bucket answers HEAD, each local directory takes a file."""
    for name, target in targets:
        if isinstance(target, Path):
            target.mkdir(parents=True, exist_ok=True)
            probe = target / ".readyz"
            probe.write_bytes(b"")
            probe.unlink()
        else:
            target.head_bucket(Bucket=name)
    return ", ".join(name if name.startswith("/") else f"s3://{name}" for name, _ in targets)


def check_broker() -> str:
    url = settings.BROKER_URL
    if not url:
        return "embedded"
    timeout = settings.READINESS_TIMEOUT_SECONDS
    if urlsplit(url).scheme in {"redis", "rediss"}:
        redis_for(url, timeout).ping()
        return "redis"
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = params.stack_timeout = params.blocked_connection_timeout = timeout
    params.connection_attempts = 1
    pika.BlockingConnection(params).close()
    return "rabbitmq"


def run_checks(timeout: float) -> dict[str, dict[str, Any]]:
    """Run every check concurrently; each gets `timeout` seconds from now."""
    checks: dict[str, Callable[[], str]] = {
        "database": check_database,
        "storage": partial(check_storage, storage_targets()),
        "broker": check_broker,
    }
    started = time.monotonic()
    futures: dict[str, Future[str]] = {
        name: _checks_pool.submit(check) for name, check in checks.items()
    }
    wait(futures.values(), timeout=timeout)
    return {name: _result(name, future, started) for name, future in futures.items()}


def _result(name: str, future: Future[str], started: float) -> dict[str, Any]:
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    if not future.done():
        future.cancel()
        log.warning("readiness check %s timed out", name)
        return {"ok": False, "error": "timeout", "ms": elapsed_ms}
    exc = future.exception()
    if exc is not None:
        # The class name only: the message may name hosts, and /readyz may be reachable.
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "detail": future.result()}


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = run_checks(settings.READINESS_TIMEOUT_SECONDS)
    ready = all(check["ok"] for check in checks.values())
    response = JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics_view,
}


class ProbeMiddleware:
    """Answer the probes and the metrics scrape first: for any Host header (probes and scrapers
    use an address, not our name), with no session, CSRF or request metrics."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/"))
        if probe is not None and request.method in {"GET", "HEAD"}:
            response = probe(request)
            response["Cache-Control"] = "no-store"
            response["X-Content-Type-Options"] = "nosniff"
            return response
        return self.get_response(request)
