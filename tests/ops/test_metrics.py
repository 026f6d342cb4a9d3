from __future__ import annotations

import base64
import logging
import uuid
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from django.test import Client, override_settings
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import generate_latest
from rest_framework.test import APIClient

from infra.logging import reset_request_id, set_request_id
from infra.metrics import exposition_registry, queue_depths
from notifications.models import Notification
from tests import services
from tests.ops.conftest import database_unreachable, in_thread, samples, value
from uploads.models import Image, State

pytestmark = pytest.mark.django_db(transaction=True)


@dramatiq.actor(queue_name="ops-test", max_retries=0)
def sometimes_fails(should_fail: bool) -> None:
    logging.getLogger("tests.ops").info("sometimes_fails ran")
    if should_fail:
        raise RuntimeError("asked to fail")


SCRAPE_TOKEN = "scrape-secret"


@pytest.fixture(autouse=True)
def scrape_token(settings: Any) -> None:
    settings.METRICS_TOKEN = SCRAPE_TOKEN


def scrape(client: Client, **headers: Any) -> str:
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {SCRAPE_TOKEN}")
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:200]
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def make_image(state: str, changed_ago: timedelta = timedelta(0), **fields: Any) -> Image:
    data = uuid.uuid4().hex
    return Image.objects.create(
        user_id="u1",
        imageable_type="Pin",
        imageable_id=str(uuid.uuid4()),
        md5=data,
        sha256=data * 2,
        format="JPEG",
        content_type="image/jpeg",
        width=640,
        height=480,
        byte_size=1000,
        state=state,
        state_changed_at=timezone.now() - changed_ago,
        **fields,
    )


def test_an_upload_counts_its_bytes_and_an_error_counts_its_code(
    client: Client, api: APIClient, jpeg: bytes, broker: Any
) -> None:
    before = scrape(client)
    body = {"data": {"image": base64.b64encode(jpeg).decode()}}
    assert api.post("/api/v1/images/", body, format="json").status_code == 202
    assert api.post("/api/v1/images/", body, format="json").status_code == 200
    assert api.post("/api/v1/images/", {"data": {}}, format="json").status_code == 400
    assert client.post("/api/v1/images/", body, content_type="application/json").status_code == 401
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("imageservice_uploads_total", result="created") == 1
    assert delta("imageservice_uploads_total", result="duplicate") == 1
    assert delta("imageservice_upload_bytes_count", format="JPEG") == 2
    assert delta("imageservice_upload_bytes_sum", format="JPEG") == 2 * len(jpeg)
    assert delta("imageservice_api_errors_total", code="missing_fields", status="400") == 1
    assert delta("imageservice_api_errors_total", code="not_authenticated", status="401") == 1
    # django-prometheus's request metrics for the web tier are on the same page.
    assert (
        delta(
            "django_http_responses_total_by_status_view_method_total",
            status="202",
            view="upload",
            method="POST",
        )
        == 1
    )
    assert (
        delta(
            "django_http_requests_latency_seconds_by_view_method_count",
            view="upload",
            method="POST",
        )
        == 4
    )


def test_tasks_are_counted_by_actor_and_outcome_and_timed(
    client: Client, broker: Any, stub_worker: Any
) -> None:
    before = scrape(client)
    for should_fail in (False, False, True):
        sometimes_fails.send(should_fail)
    broker.join("ops-test", fail_fast=False)
    stub_worker.join()
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    actor = {"actor": "sometimes_fails"}
    assert delta("imageservice_tasks_total", **actor, queue="ops-test", outcome="succeeded") == 2
    assert delta("imageservice_tasks_total", **actor, queue="ops-test", outcome="failed") == 1
    assert delta("imageservice_task_duration_seconds_count", **actor) == 3
    assert delta("imageservice_tasks_dead_lettered_total", **actor) == 1
    assert value(after, "imageservice_tasks_in_progress", **actor) == 0


def test_each_task_logs_its_outcome_with_the_request_id_of_its_upload(
    broker: Any, stub_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = set_request_id("req-ops-123")
    try:
        sometimes_fails.send(False)
        sometimes_fails.send(True)
    finally:
        reset_request_id(token)
    caplog.set_level(logging.INFO)
    broker.join("ops-test", fail_fast=False)
    stub_worker.join()
    lines = [r for r in caplog.records if r.name == "infra.metrics"]
    assert sorted((r.outcome, r.request_id, r.levelname) for r in lines) == [  # type: ignore[attr-defined]
        ("failed", "req-ops-123", "WARNING"),
        ("succeeded", "req-ops-123", "INFO"),
    ]
    assert {r.error for r in lines} == {"", "RuntimeError"}  # type: ignore[attr-defined]
    ran = [r for r in caplog.records if r.getMessage() == "sometimes_fails ran"]
    assert [r.request_id for r in ran] == ["req-ops-123"] * 2  # type: ignore[attr-defined]


def test_the_pipeline_gauges_read_the_review_queue_and_the_outbox(client: Client) -> None:
    make_image(State.IN_REVIEW, timedelta(minutes=30))
    make_image(State.IN_REVIEW, timedelta(minutes=5))
    make_image(State.RECEIVED, timedelta(hours=2))  # stale: nobody moved it
    published = make_image(State.PUBLISHED)
    Notification.objects.create(
        image=published,
        kind=Notification.Kind.APPROVED,
        url="http://pinster.test/v1/images/",
        body={},
        created_at=timezone.now() - timedelta(hours=3),
        retry_until=timezone.now() + timedelta(days=3),
    )
    Notification.objects.create(
        image=published,
        kind=Notification.Kind.TAKEN_DOWN,
        url="http://pinster.test/v1/images/",
        body={},
        state=Notification.State.FAILED,
        retry_until=timezone.now(),
    )
    text = scrape(client)
    assert value(text, "imageservice_review_queue_length") == 2
    assert value(text, "imageservice_review_queue_oldest_seconds") == pytest.approx(1800, abs=60)
    assert value(text, "imageservice_images", state="in_review") == 2
    assert value(text, "imageservice_images", state="received") == 1
    assert ("imageservice_images", (("state", "published"),)) not in samples(text)
    assert value(text, "imageservice_images_stale") == 1
    assert value(text, "imageservice_notifications_pending") == 1
    assert value(text, "imageservice_notification_oldest_pending_seconds") == pytest.approx(
        3 * 3600, abs=60
    )
    assert value(text, "imageservice_notifications_failed") == 1
    assert value(text, "imageservice_metrics_source_up", source="database") == 1


def test_an_empty_review_queue_reports_zero_age(client: Client) -> None:
    text = scrape(client)
    assert value(text, "imageservice_review_queue_length") == 0
    assert ("imageservice_review_queue_oldest_seconds", ()) in samples(text)
    assert value(text, "imageservice_review_queue_oldest_seconds") == 0


def test_a_database_error_leaves_the_scrape_working(client: Client) -> None:
    with database_unreachable():
        text = in_thread(lambda: generate_latest(exposition_registry()).decode())
    assert value(text, "imageservice_metrics_source_up", source="database") == 0
    assert value(text, "imageservice_metrics_source_up", source="broker") == 1
    assert "imageservice_review_queue_length" not in text
    assert ("imageservice_queue_messages", (("kind", "ready"), ("queue", "moderation"))) in samples(
        text
    )
    # and the next scrape, with the database back, reads it again
    text = in_thread(lambda: generate_latest(exposition_registry()).decode())
    assert value(text, "imageservice_metrics_source_up", source="database") == 1


def test_queue_depth_counts_waiting_messages_of_the_stub_broker(
    client: Client, broker: Any
) -> None:
    sometimes_fails.send(False)
    sometimes_fails.send(False)
    text = scrape(client)
    assert value(text, "imageservice_queue_messages", queue="ops-test", kind="ready") == 2
    assert value(text, "imageservice_queue_messages", queue="moderation", kind="ready") == 0


@pytest.mark.services
def test_queue_depth_reads_the_redis_broker_keys(client: Client) -> None:
    stub = dramatiq.get_broker()
    with services.redis_server() as url, override_settings(BROKER_URL=url):
        redis_broker = RedisBroker(url=url)
        dramatiq.set_broker(redis_broker)
        try:
            redis_broker.declare_queue("moderation")
            message = dramatiq.Message(
                queue_name="moderation",
                actor_name="moderate_image",
                args=("x",),
                kwargs={},
                options={},
            )
            redis_broker.enqueue(message)
            redis_broker.enqueue(message.copy(), delay=60_000)
            redis_broker.enqueue(message.copy())
            depths = {(q, k): n for q, k, n in queue_depths()}
            text = scrape(client)
        finally:
            dramatiq.set_broker(stub)
            redis_broker.close()
    assert depths[("moderation", "ready")] == 2
    assert depths[("moderation", "delayed")] == 1
    assert depths[("moderation", "dead")] == 0
    assert value(text, "imageservice_queue_messages", queue="moderation", kind="ready") == 2


def test_an_unreachable_broker_leaves_the_database_gauges(client: Client) -> None:
    stub = dramatiq.get_broker()
    url = f"redis://127.0.0.1:{services.free_port()}/0"
    with override_settings(BROKER_URL=url):
        unreachable = RedisBroker(url=url)
        unreachable.declare_queue("moderation")
        dramatiq.set_broker(unreachable)
        try:
            text = scrape(client)
        finally:
            dramatiq.set_broker(stub)
    assert value(text, "imageservice_metrics_source_up", source="broker") == 0
    assert value(text, "imageservice_metrics_source_up", source="database") == 1
    assert "imageservice_review_queue_length" in text


def test_the_metrics_token_guards_the_scrape(client: Client) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    text = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert "imageservice_metrics_source_up" in text


def test_without_a_token_metrics_are_off_unless_debug(client: Client) -> None:
    with override_settings(METRICS_TOKEN=""):
        assert client.get("/metrics").status_code == 403
        with override_settings(DEBUG=True):
            assert client.get("/metrics").status_code == 200


def test_the_scrape_is_answered_for_any_host(client: Client) -> None:
    text = scrape(client, HTTP_HOST="10.0.0.7:8000")
    assert "django_http_requests" in text
