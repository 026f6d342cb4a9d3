"""Prometheus metrics: the API (on top of django-prometheus), the workers, and the pipeline.

- Web: `ApiMetricsMiddleware` counts accepted uploads and their bytes, and error responses by
  their stable `code`. Request counts and latencies come from django-prometheus.
- Workers: `TaskMetricsMiddleware` (a Dramatiq middleware) counts tasks by actor and outcome,
  times them, and logs one line per task with the request id of the upload that caused it. With
  WORKER_METRICS_PORT set it forks one small HTTP server per worker instance.
- Pipeline: `PipelineCollector` reads queue depths from the broker and the review queue and the
  notification outbox from the database at scrape time. A failing source is reported as
  `imageservice_metrics_source_up{source=...} 0`; it never fails the scrape.

Several processes (gunicorn workers, Dramatiq worker processes) share their counters through
prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR must be set before the process
starts (the Docker image and deploy/stack.py do so).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dramatiq
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import autodiscover_modules
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from infra.broker import redis_for

log = logging.getLogger(__name__)

UPLOAD_ROUTES = frozenset({"upload", "upload-root"})
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
MB = 1024 * 1024

UPLOADS = Counter(
    "imageservice_uploads_total", "Uploads accepted, new or a duplicate of a stored one", ["result"]
)
UPLOAD_BYTES = Histogram(
    "imageservice_upload_bytes",
    "Size of accepted uploads (image bytes, after base64 decoding)",
    ["format"],
    buckets=(64 * 1024, 256 * 1024, MB, 2 * MB, 4 * MB, 8 * MB, 16 * MB, 32 * MB),
)
API_ERRORS = Counter(
    "imageservice_api_errors_total",
    "Error responses by their `code` and HTTP status",
    ["code", "status"],
)
TASKS = Counter(
    "imageservice_tasks_total",
    "Task executions by actor and outcome (succeeded, failed, skipped)",
    ["actor", "queue", "outcome"],
)
TASK_SECONDS = Histogram(
    "imageservice_task_duration_seconds",
    "Time spent in each task execution",
    ["actor"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TASKS_RUNNING = Gauge(
    "imageservice_tasks_in_progress", "Tasks running now", ["actor"], multiprocess_mode="livesum"
)
TASKS_DEAD = Counter(
    "imageservice_tasks_dead_lettered_total", "Messages that ran out of retries", ["actor"]
)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


# --- Web --------------------------------------------------------------------------------------


class ApiMetricsMiddleware:
    """Counts accepted uploads with their size, and error responses by code."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        try:
            observe(request, response)
        except Exception:  # metrics must never break a response
            log.exception("could not record the metrics of a response")
        return response


def observe(request: HttpRequest, response: HttpResponse) -> None:
    if response.status_code >= 400:
        code = error_code(response)
        if code:
            API_ERRORS.labels(code, str(response.status_code)).inc()
        return
    match = request.resolver_match
    if match is None or match.url_name not in UPLOAD_ROUTES or request.method != "POST":
        return
    body = getattr(response, "data", None)
    if response.status_code in (200, 202) and isinstance(body, dict):
        UPLOADS.labels("created" if response.status_code == 202 else "duplicate").inc()
        UPLOAD_BYTES.labels(str(body.get("format") or "unknown")).observe(body["byte_size"])


def error_code(response: HttpResponse) -> str:
    """The `code` of our JSON error body ("other" for an unexpected one), or "" for none."""
    body = getattr(response, "data", None)
    if body is None and response.get("Content-Type", "").startswith("application/json"):
        content = b"" if response.streaming else response.content
        try:
            body = json.loads(content) if len(content) <= 65536 else None
        except ValueError:
            body = None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        return ""
    return code if ERROR_CODE.match(code) else "other"


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition for this web instance. A scraper must send METRICS_TOKEN as a
    bearer token; without one set, metrics are served only in DEBUG."""
    token = settings.METRICS_TOKEN
    if not token and not settings.DEBUG:
        return HttpResponse("metrics are off: set METRICS_TOKEN\n", status=403)
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            response = HttpResponse("metrics need the scrape token\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(exposition_registry()), content_type=CONTENT_TYPE_LATEST)


def exposition_registry() -> CollectorRegistry:
    """Every process's metrics (multiprocess mode) or this process's, plus the pipeline's."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(PipelineCollector())
    return registry


# --- Workers ----------------------------------------------------------------------------------


class TaskMetricsMiddleware(dramatiq.Middleware):
    """Counts and times every task, and logs its outcome (with the upload's request id: list it
    after infra.logging.TaskContextMiddleware, whose after-hooks then run later)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_worker_metrics] if settings.WORKER_METRICS_PORT else []

    def before_process_message(self, broker: Any, message: Any) -> None:
        self.started[message.message_id] = time.monotonic()
        TASKS_RUNNING.labels(message.actor_name).inc()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        self.finish(message, "failed" if exception is not None else "succeeded", exception)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self.finish(message, "skipped", None)

    def after_nack(self, broker: Any, message: Any) -> None:
        TASKS_DEAD.labels(message.actor_name).inc()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())

    def finish(self, message: Any, outcome: str, exception: BaseException | None) -> None:
        started = self.started.pop(message.message_id, None)
        actor = message.actor_name
        TASKS.labels(actor, message.queue_name, outcome).inc()
        if started is None:
            return
        seconds = time.monotonic() - started
        TASKS_RUNNING.labels(actor).dec()
        TASK_SECONDS.labels(actor).observe(seconds)
        log.log(
            logging.WARNING if exception is not None else logging.INFO,
            "task %s %s in %.0f ms",
            actor,
            outcome,
            seconds * 1000,
            extra={
                "actor": actor,
                "outcome": outcome,
                "duration_ms": round(seconds * 1000, 1),
                "message_id": message.message_id,
                "task_args": list(message.args),
                "retries": message.options.get("retries", 0),
                "error": type(exception).__name__ if exception is not None else "",
            },
        )


def serve_worker_metrics() -> int:
    """Dramatiq fork function: serve every worker process's metrics and the pipeline's on
    WORKER_METRICS_ADDR:WORKER_METRICS_PORT until the worker stops."""
    import django
    from prometheus_client import start_http_server

    django.setup()
    _server, thread = start_http_server(
        settings.WORKER_METRICS_PORT,
        addr=settings.WORKER_METRICS_ADDR,
        registry=exposition_registry(),
    )
    log.info(
        "worker metrics on http://%s:%d/metrics",
        settings.WORKER_METRICS_ADDR,
        settings.WORKER_METRICS_PORT,
    )
    thread.join()
    return 0


# --- Pipeline (read at scrape time) -----------------------------------------------------------


Source = Callable[[], Iterable[Metric]]
_sources: dict[str, Source] = {}


def register_source(name: str, read: Source) -> None:
    """A source of scrape-time metrics (the apps' tables, registered by the project package)."""
    _sources[name] = read


class PipelineCollector:
    """Queue depths, images waiting at each stage, the review queue and the notification outbox.
    Each source is guarded: when it fails, its `up` gauge is 0 and the others still report."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "imageservice_metrics_source_up",
            "Whether the pipeline metrics could be read from this source",
            labels=["source"],
        )
        for source, read in (("broker", broker_metrics), *_sources.items()):
            try:
                families = list(read())
            except Exception as exc:
                log.warning("metrics source %s failed: %s: %s", source, type(exc).__name__, exc)
                if source == "database":
                    connections["default"].close()  # reconnect at the next scrape
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up


def queue_depths() -> Iterable[tuple[str, str, int]]:
    """(queue, kind, messages) with kind ready, delayed or dead, for each declared queue."""
    # Declare every actor's queue, not only those this process happened to import.
    autodiscover_modules(*settings.DRAMATIQ_AUTODISCOVER_MODULES)
    broker: Any = dramatiq.get_broker()
    queues = sorted(broker.get_declared_queues())
    kind = type(broker).__name__
    if kind == "RedisBroker":
        client = redis_client()
        ns = broker.namespace
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(f"{ns}:{queue}")
            pipe.llen(f"{ns}:{queue}.DQ")
            pipe.zcard(f"{ns}:{queue}.XQ")
        counts = pipe.execute()
        for i, queue in enumerate(queues):
            for j, name in enumerate(("ready", "delayed", "dead")):
                yield queue, name, int(counts[i * 3 + j])
    elif kind == "RabbitmqBroker":
        for queue in queues:
            ready, delayed, dead = broker.get_queue_message_counts(queue)
            yield from ((queue, "ready", ready), (queue, "delayed", delayed), (queue, "dead", dead))
    else:  # StubBroker (embedded mode)
        from dramatiq.common import dq_name

        for queue in queues:
            yield queue, "ready", broker.queues[queue].qsize()
            yield queue, "delayed", broker.queues[dq_name(queue)].qsize()
            yield queue, "dead", len(broker.dead_letters_by_queue.get(queue, ()))


def redis_client() -> Any:
    return redis_for(settings.BROKER_URL, settings.READINESS_TIMEOUT_SECONDS)


def broker_metrics() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "imageservice_queue_messages",
        "Messages in the broker by queue and kind",
        labels=["queue", "kind"],
    )
    for queue, kind, count in queue_depths():
        family.add_metric([queue, kind], count)
    yield family


def statement_timeout_ms() -> int:
    return int(settings.READINESS_TIMEOUT_SECONDS * 1000)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def age(now: Any, then: Any) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0
